# ordinal::clmm reference fits (cumulative link mixed models) for mixedfx issue 11: the wine data,
# rating ~ temp + contact + (1 | judge), logit link by Laplace and by adaptive Gauss-Hermite quadrature
# (nAGQ = 10), and probit link (Laplace).
# Second batch: cloglog link (Laplace; wine_cloglog_laplace, see the ordinal bug below), logit with
# nAGQ = 5 (wine_logit_agq5), and crossed judge and bottle intercepts (Laplace; wine_two_re). No other
# data sets.
#
# ordinal 2022.11.16 BUG (cloglog/loglog with one scalar random term): such models go through the C
# code of clmm.fit.ssr, which maps link "cloglog" to its C link 3 = d_pgumbel(x) = exp(-exp(-x)), the
# Gumbel-max CDF that the rest of ordinal (setLinks, clm) calls "loglog" (and "loglog" to the true
# cloglog). So clmm(..., link = "cloglog") with (1 | judge) silently fits the LOGLOG model: its fitted()
# values are reproduced by F(x) = exp(-exp(-x)) to 1e-16 and not by 1 - exp(-exp(x)) (0.26 off), and
# its logLik (-82.729) equals that of the general-path loglog fit, while clmm(..., link = "loglog") gives
# the cloglog one (-81.541). The general fitter (clmm.fit.env: R-level F from setLinks), forced with
# control = clmm.control(useMatrix = TRUE), is correct (for logit and probit both paths agree to ~4e-6
# in logLik, 2e-5 in the coefficients). Hence: wine_cloglog_laplace = the true cloglog model by
# useMatrix = TRUE (SD-scale random-effect parameter, see below); wine_cloglog_laplace_ordinal_default =
# the call as users would write it, kept to document the bug (it is the loglog model: F_used = "loglog";
# do not use it as a cloglog reference).
# Usage (from the repository root): Rscript tests/reference/make_clmm.R tests/reference/clmm.json
# Data: the bundled copy src/mixedfx/datasets/data/wine.csv.gz (made by make_families_data.R), rating
# as an ordered factor with levels "1" < ... < "5". Deterministic.
#
# Model (ordinal's parameterisation): P(Y_i <= j | u) = F(alpha_j - x_i' beta - u_judge),
# j = 1..4, u ~ N(0, sd^2), F = plogis (logit), pnorm (probit) or 1 - exp(-exp(x)) (cloglog);
# alpha = the thresholds
# ("1|2", ..., "4|5"), beta WITHOUT an intercept (note the minus sign). In coef(fit)/vcov(fit) the
# parameters are (alpha, beta, ST) where the random-effect SD enters as log(sd) ("ST1" in vcov is on
# the log scale: ordinal's clmm optimises log(sd)); sd = the judge SD from VarCorr.
# Optimisation: ordinal's defaults (nlminb). Asking nlminb for rel.tol = 1e-14 only turns its message
# into "singular convergence (7)" at the same point (max |gradient| ~1e-5 either way), so the defaults
# are kept; convergence records nlminb's code/message and max |gradient| (ordinal's fit$gradient).
# In vcov() the last row "ST1" belongs to the optimiser's random-effect parameter; whether that is
# the SD or log(SD) is recorded by opt_par_last_minus_log_sd (0 => log scale) and re_sd.
# probs_re0_head: category probabilities P(Y = j) for the first 5 rows with u = 0:
#   diff(c(0, F(alpha - x'beta), 1)), computed here from the estimates.
#
# Two random terms (wine_two_re): ordinal then uses its general fitter (clmm.fit.env) instead of the
# scalar one (clmm.fit.ssr): the optimiser's random-effect parameters are the SDs themselves (lower
# bound 0), NOT log(SD), and any SD below 0.001 counts as "on the boundary" (paratBoundary2) and is
# DROPPED from gradient, Hessian and vcov (so vcov has one "ST1" row, the judge SD on the SD scale).
# Fields added for this (all records): opt_par_re (the optimiser's random-effect parameters, in
# formula order), opt_par_re_scale ("log_sd" or "sd", whichever opt_par_re equals), re_par_se (SE of
# each group's opt_par_re from vcov on that scale; null where dropped), boundary (groups with SD <
# 0.001). log_sd_se (the last vcov entry) is kept only when that entry is a log SD (null otherwise);
# opt_par_last_minus_log_sd is tail(optRes$par, #groups) - log(SDs) (one number per group).
# ranef, re_sd, re_var: one entry per grouping factor.
# fitted_check_max_abs_diff: max |fitted(fit) - P(Y = y_i | u = conditional modes)| computed here from
# alpha, beta and ranef with the F of fit$link (checks the sign convention and F). F_used: which of
# logit / probit / cloglog (1 - exp(-exp(x))) / loglog (exp(-exp(-x))) reproduces fitted(fit) (< 1e-8);
# probs_re0_head and loglik_integral are computed with F_used (= link except in the bug record).
# loglik_integral (single grouping factor only): the exact marginal log-likelihood at the fitted
# parameters, sum_j log int prod_i P(y_i | u) N(u; 0, sd^2) du by integrate() per judge; logLik_minus_
# integral = logLik(fit) - that. It answers whether ordinal's logLik is on the same scale for Laplace and
# AGQ: both are approximations of the same full marginal log-likelihood (all constants included); with
# nAGQ = 5 or 10 (adaptive) the difference is at rounding level, with Laplace it is the Laplace error.
suppressPackageStartupMessages({library(ordinal); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_clmm.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))
datadir <- file.path(here, "..", "..", "src", "mixedfx", "datasets", "data")
manifest <- fromJSON(file.path(datadir, "datasets.json"), simplifyVector = TRUE)
facs <- manifest$wine$factors
wine <- read.csv(gzfile(file.path(datadir, "wine.csv.gz")),
                 colClasses = setNames(rep("character", length(facs)), names(facs)))
for (col in names(facs)) wine[[col]] <- factor(wine[[col]], levels = facs[[col]])
wine$rating <- factor(wine$rating, levels = facs$rating, ordered = TRUE)
datasets <- list(wine = list(nrow = nrow(wine), columns = I(names(wine)), fingerprint = lapply(wine, fingerprint),
                             note = "rating read as an ordered factor"))
CONTROL_TEXT <- "ordinal defaults (clmm.control(): nlminb)"
CDFS <- list(logit = plogis, probit = pnorm, cloglog = function(x) -expm1(-exp(x)),   # F per link
             loglog = function(x) exp(-exp(-x)))

clmm_record <- function(id, call, notes = NULL, control = CONTROL_TEXT) {
  warn <- character(0)
  fit <- withCallingHandlers(eval(parse(text = call)),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") })
  link <- fit$link
  alpha <- fit$alpha; beta <- fit$beta
  sds <- vapply(VarCorr(fit), function(v) unname(attr(v, "stddev")), 0)
  sdre <- sds[["judge"]]
  V <- vcov(fit); se <- sqrt(diag(V))
  nre <- length(sds)
  opt_re <- unname(tail(fit$optRes$par, nre))
  re_scale <- if (max(abs(opt_re - log(sds))) < 1e-8) "log_sd" else if (max(abs(opt_re - sds)) < 1e-8) "sd" else "unknown"
  bnd <- names(sds)[sds < 1e-3]
  kept <- if (re_scale == "sd") setdiff(names(sds), bnd) else names(sds)
  st_se <- unname(se[grepl("^ST", names(se))])
  re_par_se <- setNames(lapply(names(sds), function(g) if (g %in% kept && length(st_se) == length(kept))
    st_se[match(g, kept)]), names(sds))
  eta_u <- drop(model.matrix(~ temp + contact, wine)[, -1, drop = FALSE] %*% beta)
  for (g in names(sds)) eta_u <- eta_u + ranef(fit)[[g]][as.integer(wine[[g]]), 1]
  th <- c(-Inf, alpha, Inf); yi <- as.integer(wine$rating)
  fitted_diffs <- vapply(CDFS, function(F) max(abs(fitted(fit) - (F(th[yi + 1] - eta_u) - F(th[yi] - eta_u)))), 0)
  F_used <- names(which.min(fitted_diffs))   # the F that reproduces ordinal's fitted values
  if (fitted_diffs[[F_used]] > 1e-8) stop(id, ": no candidate F reproduces fitted(fit)")
  Fn <- CDFS[[F_used]]
  ll_int <- NULL
  if (nre == 1) {        # exact marginal log-likelihood at the estimates, judge by judge
    eta0 <- drop(model.matrix(~ temp + contact, wine)[, -1, drop = FALSE] %*% beta)
    ll_int <- sum(vapply(split(seq_len(nrow(wine)), wine$judge), function(rows) {
      f <- function(z) vapply(z, function(zz) prod(Fn(th[yi[rows] + 1] - eta0[rows] - sdre * zz) -
                                                   Fn(th[yi[rows]] - eta0[rows] - sdre * zz)), 0) * dnorm(z)
      log(integrate(f, -12, 12, subdivisions = 1000L, rel.tol = 1e-13, abs.tol = 0)$value)
    }, 0))
  }
  X <- model.matrix(~ temp + contact, wine)[, -1, drop = FALSE]
  eta <- drop(X %*% beta)
  probs <- t(sapply(1:5, function(i) diff(c(0, Fn(alpha - eta[i]), 1))))
  ll <- as.numeric(logLik(fit))
  gmax <- max(abs(fit$gradient))
  rec <- list(id = id, package = "ordinal", version = as.character(packageVersion("ordinal")), call = call,
              control = control, data = "wine", nobs = nobs(fit), link = link, nAGQ = fit$nAGQ,
              logLik = ll, objective = -2 * ll, df = attr(logLik(fit), "df"), AIC = AIC(fit),
              alpha = as.list(alpha), beta = as.list(beta), re_sd = as.list(sds), re_var = as.list(sds^2),
              coef_names = I(names(coef(fit))), coef = I(unname(coef(fit))),
              se_names = I(names(se)), se = I(unname(se)),
              alpha_se = as.list(se[names(alpha)]), beta_se = as.list(se[names(beta)]),
              log_sd_se = if (re_scale == "log_sd") unname(se[length(se)]),
              opt_par_re = I(opt_re), opt_par_re_scale = re_scale, re_par_se = re_par_se, boundary = I(bnd),
              vcov = unname(V),
              ranef = lapply(ranef(fit), function(d) I(unname(d[, 1]))),
              convergence = list(converged = fit$optRes$convergence == 0 && gmax < 1e-4,
                                 code = fit$optRes$convergence, message = fit$optRes$message,
                                 max_abs_grad = gmax, condHess = unname(fit$condHess), opt_par_last_minus_log_sd = opt_re - log(unname(sds)), warnings = I(warn)),
              probs_re0_head = unname(probs), eta_head = I(unname(eta[1:5])),
              fitted_check_max_abs_diff = fitted_diffs[[link]], F_used = F_used,
              loglik_integral = ll_int, logLik_minus_integral = if (!is.null(ll_int)) ll - ll_int,
              notes = notes)
  cat(sprintf("%-20s ll=%14.8f g=%.0e code=%s condH=%.1f sd=%s scale=%s ll-int=%s\n", id, ll, gmax,
              fit$optRes$convergence, if (is.null(fit$condHess)) NA else fit$condHess,
              paste(sprintf("%.6g", sds), collapse = ","), re_scale,
              if (is.null(ll_int)) "NA" else sprintf("%.2e", ll - ll_int)))
  rec
}
fits <- list(
  clmm_record("wine_logit_laplace",
    "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'logit', Hess = TRUE)"),
  clmm_record("wine_logit_agq10",
    "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'logit', nAGQ = 10, Hess = TRUE)",
    notes = "adaptive Gauss-Hermite quadrature with 10 nodes (ordinal: nAGQ > 1 = adaptive)"),
  clmm_record("wine_probit_laplace",
    "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'probit', Hess = TRUE)"),
  clmm_record("wine_cloglog_laplace",
    "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'cloglog', Hess = TRUE, control = clmm.control(useMatrix = TRUE))",
    control = "clmm.control(useMatrix = TRUE) (ordinal's general fitter clmm.fit.env, nlminb), to avoid the cloglog/loglog swap of the scalar fitter (see the header)",
    notes = "complementary log-log, F(x) = 1 - exp(-exp(x)) (F_used confirms). General fitter: the optimiser's random-effect parameter and vcov's ST1 are the judge SD on the SD scale (opt_par_re_scale = 'sd'), not log(SD)"),
  clmm_record("wine_cloglog_laplace_ordinal_default",
    "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'cloglog', Hess = TRUE)",
    notes = "NOT a cloglog reference: ordinal 2022.11.16's scalar-random-effect fitter maps 'cloglog' to exp(-exp(-x)) (the loglog model; F_used = 'loglog'), see the header. Kept to document the bug; probs_re0_head and loglik_integral use the F actually fitted"),
  clmm_record("wine_logit_agq5",
    "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'logit', nAGQ = 5, Hess = TRUE)",
    notes = "adaptive Gauss-Hermite quadrature with 5 nodes; logLik is the same full marginal log-likelihood as the Laplace and nAGQ = 10 records (see logLik_minus_integral)"),
  clmm_record("wine_two_re",
    "clmm(rating ~ temp + contact + (1 | judge) + (1 | bottle), data = wine, link = 'logit', Hess = TRUE)",
    notes = "crossed judge and bottle intercepts, Laplace. Boundary fit: the bottle SD goes to ~0 (ordinal's general fitter optimises the SDs on their own scale with a lower bound 0; an SD < 0.001 is dropped from the gradient, Hessian and vcov, so vcov's ST1 is the judge SD on the SD scale and the bottle SD has no SE); the other estimates match wine_logit_laplace closely. No loglik_integral (crossed factors)."))
writeLines(toJSON(list(
  description = "ordinal::clmm cumulative link mixed models on the wine data (mixedfx issue 11); see make_clmm.R",
  ordinal_version = as.character(packageVersion("ordinal")), R = R.version.string,
  parameterisation = "P(Y <= j | u) = F(alpha_j - x'beta - u), u ~ N(0, sd^2)",
  datasets = datasets, fits = fits),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "\n")
