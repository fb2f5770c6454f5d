# ordinal::clmm reference fits (cumulative link mixed models) for mixedfx issue 11: the wine data,
# rating ~ temp + contact + (1 | judge), logit link by Laplace and by adaptive Gauss-Hermite quadrature
# (nAGQ = 10), and probit link (Laplace).
# Usage (from the repository root): Rscript tests/reference/make_clmm.R tests/reference/clmm.json
# Data: the bundled copy src/mixedfx/datasets/data/wine.csv.gz (made by make_families_data.R), rating
# as an ordered factor with levels "1" < ... < "5". Deterministic.
#
# Model (ordinal's parameterisation): P(Y_i <= j | u) = F(alpha_j - x_i' beta - u_judge),
# j = 1..4, u ~ N(0, sd^2), F = plogis (logit) or pnorm (probit); alpha = the thresholds
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

clmm_record <- function(id, call, notes = NULL) {
  warn <- character(0)
  fit <- withCallingHandlers(eval(parse(text = call)),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") })
  link <- fit$link
  Fn <- if (link == "logit") plogis else pnorm
  alpha <- fit$alpha; beta <- fit$beta
  sdre <- unname(attr(VarCorr(fit)$judge, "stddev"))
  V <- vcov(fit); se <- sqrt(diag(V))
  X <- model.matrix(~ temp + contact, wine)[, -1, drop = FALSE]
  eta <- drop(X %*% beta)
  probs <- t(sapply(1:5, function(i) diff(c(0, Fn(alpha - eta[i]), 1))))
  ll <- as.numeric(logLik(fit))
  gmax <- max(abs(fit$gradient))
  rec <- list(id = id, package = "ordinal", version = as.character(packageVersion("ordinal")), call = call,
              control = CONTROL_TEXT, data = "wine", nobs = nobs(fit), link = link, nAGQ = fit$nAGQ,
              logLik = ll, objective = -2 * ll, df = attr(logLik(fit), "df"), AIC = AIC(fit),
              alpha = as.list(alpha), beta = as.list(beta), re_sd = list(judge = sdre), re_var = list(judge = sdre^2),
              coef_names = I(names(coef(fit))), coef = I(unname(coef(fit))),
              se_names = I(names(se)), se = I(unname(se)),
              alpha_se = as.list(se[names(alpha)]), beta_se = as.list(se[names(beta)]),
              log_sd_se = unname(se[length(se)]),
              vcov = unname(V),
              ranef = list(judge = I(unname(ranef(fit)$judge[, 1]))),
              convergence = list(converged = fit$optRes$convergence == 0 && gmax < 1e-4,
                                 code = fit$optRes$convergence, message = fit$optRes$message,
                                 max_abs_grad = gmax, condHess = unname(fit$condHess), opt_par_last_minus_log_sd = unname(fit$optRes$par[length(fit$optRes$par)] - log(sdre)), warnings = I(warn)),
              probs_re0_head = unname(probs), eta_head = I(unname(eta[1:5])),
              notes = notes)
  cat(sprintf("%-16s ll=%14.8f g=%.0e code=%s condH=%.1f sd=%.6f\n", id, ll, gmax, fit$optRes$convergence,
              if (is.null(fit$condHess)) NA else fit$condHess, sdre))
  rec
}
fits <- list(
  clmm_record("wine_logit_laplace",
    "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'logit', Hess = TRUE)"),
  clmm_record("wine_logit_agq10",
    "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'logit', nAGQ = 10, Hess = TRUE)",
    notes = "adaptive Gauss-Hermite quadrature with 10 nodes (ordinal: nAGQ > 1 = adaptive)"),
  clmm_record("wine_probit_laplace",
    "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'probit', Hess = TRUE)"))
writeLines(toJSON(list(
  description = "ordinal::clmm cumulative link mixed models on the wine data (mixedfx issue 11); see make_clmm.R",
  ordinal_version = as.character(packageVersion("ordinal")), R = R.version.string,
  parameterisation = "P(Y <= j | u) = F(alpha_j - x'beta - u), u ~ N(0, sd^2)",
  datasets = datasets, fits = fits),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "\n")
