# glmmTMB reference fits for non-Gaussian / non-standard response families (mixedfx issue 11):
# zero-inflated Poisson and NB, hurdle (truncated) NB, NB1 and NB2, beta-binomial, Student-t,
# Gaussian with a dispersion model, beta, Tweedie, lognormal. All ML (REML = FALSE), Laplace.
# Second batch (records after tweediesim_tweedie): hurdle Poisson (sal_hpois), hurdle NB1 (sal_hnb1),
# NB2 with a dispersion model (sal_nb2_disp), ZIP with a random effect in the zi part (sal_zip_zire),
# generalized Poisson (sal_genpois), Student-t with df fixed at 4 (ss_t_df4), beta and Tweedie with
# dispersion models (betasim_beta_disp, tweediesim_tweedie_disp), zero-inflated binomial (cbpp_zibin),
# Gamma with a log link (ss_gamma). These records carry "density_check" (see below).
# Usage (from the repository root):
#   Rscript tests/reference/make_glmmtmb_families.R tests/reference/glmmtmb_families.json
# Data: the bundled copies src/mixedfx/datasets/data/*.csv.gz (factor levels from datasets.json; made
# by make_families_data.R, cbpp/sleepstudy by make_datasets_lme4.R), so R and Python fit the same
# numbers. Deterministic (no random numbers); run with one BLAS thread.
#
# Conventions as in make_structured.R: nlminb with glmmTMBControl(optCtrl = list(iter.max = 1e4,
# eval.max = 1e4)), then a Newton polish of the outer parameters (TMB gradient, optimHess() of it) and
# a refit from the polished values with update(fit, start = ...), so every reported number comes from
# glmmTMB at the polished optimum ("optimizer_first" keeps nlminb's first answer; convergence$polished
# says whether the polish was used: it is skipped unless it reduces the gradient tenfold).
# logLik = -fit$fit$objective; objective = -2 logLik; df = number of outer parameters
# (length(fit$fit$par)); AIC = objective + 2 df. converged = pdHess && max |gradient| < 1e-3.
#
# glmmTMB 1.1.5 parameterisation (from its family functions / src/glmmTMB.cpp; checked against
# sigma() and family_params() in each record):
#   cond: linear predictor eta = X beta + Z b (+ offset), mu = linkinv(eta).
#   zi  : zero-inflation probability p0 = plogis(X_zi betazi) (+ Z_zi bzi). For zero-inflated families
#         P(y = 0) = p0 + (1 - p0) f(0), P(y) = (1 - p0) f(y), y > 0. For the truncated_* (hurdle)
#         families the zi part is the probability of a structural zero p0 and
#         P(y) = (1 - p0) f(y) / (1 - f(0)) for y > 0, P(0) = p0.
#   disp: betad, the dispersion linear predictor, phi = exp(X_d betad); sigma(fit) = phi except for
#         the Gaussian family, where phi = exp(X_d betad) is the residual VARIANCE (sd = exp(X_d betad / 2);
#         predict(type = "disp") returns that sd; checked in ss_gauss_disp by the exact dense Gaussian
#         log-likelihood, "gaussian_check"); "sigma_check_exp_betad" = sigma(fit) - exp(betad); per family:
#     poisson          : no dispersion parameter.
#     nbinom2          : Var = mu + mu^2 / phi (phi = sigma(fit) = NB "size"/theta).
#     nbinom1          : Var = mu (1 + phi) (phi = sigma(fit)).
#     truncated_nbinom2: as nbinom2 before truncation at 0.
#     betabinomial     : p ~ Beta(mu phi, (1 - mu) phi) (phi = sigma(fit)); Var(y) = n mu (1 - mu)
#                        (1 + (n - 1) / (phi + 1)).
#     beta_family      : y ~ Beta(mu phi, (1 - mu) phi), phi = sigma(fit) the precision.
#     t_family         : y = mu + sigma e, e ~ Student-t(df); sigma = sigma(fit) = exp(betad) is the
#                        scale (not the SD); df = exp(psi) (family_params(fit)), estimated by default.
#     tweedie          : Var = phi mu^p, phi = sigma(fit) = exp(betad), p = 1 + plogis(psi) in (1, 2)
#                        (family_params(fit)).
#     gaussian         : y ~ N(mu, exp(X_d betad)) (variance); sd per row in predict_disp_head.
#     truncated_poisson: hurdle Poisson: P(0) = p0, P(y) = (1 - p0) dpois(y, mu) / (1 - exp(-mu)), y > 0;
#                        no dispersion parameter; type = "conditional" = the zero-truncated mean
#                        mu / (1 - exp(-mu)) (as for truncated_nbinom2 above).
#     truncated_nbinom1: hurdle NB1: the NB1 above (Var = mu (1 + phi), i.e. NB size mu / phi, prob
#                        1 / (1 + phi), P(0) = (1 + phi)^(-mu / phi)) truncated at 0; phi = sigma(fit);
#                        type = "conditional" = mu / (1 - P(0)), the zero-truncated mean.
#     genpois          : generalized Poisson (Consul & Famoye 1992, in the Joe & Zhu 2005 form):
#                        P(y) = th (th + la y)^(y - 1) exp(-th - la y) / y! with th = mu / sqrt(phi),
#                        la = 1 - 1 / sqrt(phi), phi = exp(betad) = sigma(fit); so E y = th / (1 - la) = mu
#                        and Var y = th / (1 - la)^3 = phi mu (phi = index of dispersion; phi < 1 means
#                        underdispersion, la < 0). glmmTMB's ?sigma.glmmTMB calls sigma(fit) "the index of
#                        dispersion phi^2 with variance mu phi^2" (its phi = our sqrt(phi)); ?genpois
#                        says V = mu exp(eta_disp); both agree with Var = sigma(fit) mu. Checked by
#                        density_check and by the pmf moments in density_check$genpois_moments.
#     Gamma            : y ~ Gamma(shape = exp(betad), scale = mu / shape) (src/glmmTMB.cpp: s1 = phi
#                        "shape", s2 = mu / phi "scale"), Var = mu^2 / shape. sigma(fit) = exp(-betad / 2)
#                        = 1 / sqrt(shape), the coefficient of variation (sigma.glmmTMB source and
#                        ?sigma.glmmTMB: "sigma is estimated as (1/sqrt(shape))"; print() shows sigma^2 as
#                        the "dispersion estimate"); predict(type = "disp") also returns 1 / sqrt(shape).
#                        (?family_glmmTMB's "phi is the shape parameter. V=mu*phi" does not match the
#                        code's Var = mu^2 / phi.)
#                        family_params$shape = exp(betad), sigma_check_inv_sqrt_shape = sigma - shape^-1/2.
#     t with df fixed  : glmmTMB 1.1.5 fixes the df with start = list(psi = log(df)), map = list(psi =
#                        factor(NA)) (the recipe in ?t_family); psi is then not an outer parameter (not in
#                        par, not counted in df) and family_params(fit) returns the fixed df.
#   With a dispformula other than ~1, sigma(fit) is NA (not recorded); see fixef$disp (log scale) and
#   predict_disp_head (glmmTMB's type = "disp" per row).
# Per record: fixef/fixef_se for each part (cond, zi, disp; SEs from vcov(fit)), par (all outer
# parameters with names: beta, betazi, betad, theta, thetazi, psi), VarCorr (SDs, correlations,
# theta) for the cond and zi random terms, family_params (natural scales), convergence, the first 10
# values of fitted() (response scale: for zi/hurdle models E y = (1 - p0) x conditional mean, glmmTMB's
# type = "response") and of predict(type = "link"/"conditional"/"zprob"/"zlink"/"disp") where defined.
# For the hurdle (truncated_nbinom2) fit, type = "conditional" is the mean of the zero-TRUNCATED NB
# (fitted = (1 - zprob) x conditional there). zi_boundary = some |zi coefficient| > 10 (a zero-
# inflation probability estimated at 0 or 1: the coefficient drifts, the Hessian is singular).
# seconds: elapsed time of the first glmmTMB() call (system.time; one BLAS thread; the first record
# also pays one-off loading costs); informational only, not a benchmark.
# density_check (second batch, except Tweedie: no Tweedie density in base R): the joint negative
# log-likelihood -log f(y | b) - log p(b) at the optimum (all parameters and conditional modes from
# obj$env$last.par.best), computed here from the densities written above with base R d*() functions,
# against TMB's own value obj$env$f(last.par.best); "difference" ~ 1e-10 confirms the
# parameterisation (the Laplace logLik itself adds the log-determinant term and cannot be recomputed
# this simply).
suppressPackageStartupMessages({library(glmmTMB); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_glmmtmb_families.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))      # fingerprint()
source(file.path(here, "bundled.R"))          # datadir, manifest, datasets, load_bundled(), fp_data()

datasets <- list()
salamanders <- fp_data("salamanders", load_bundled("salamanders"))
owls <- fp_data("owls", load_bundled("owls"))
cbpp <- fp_data("cbpp", load_bundled("cbpp"))
sleepstudy <- fp_data("sleepstudy", load_bundled("sleepstudy"))
betasim <- fp_data("betasim", load_bundled("betasim"))
tweediesim <- fp_data("tweediesim", load_bundled("tweediesim"))

ctl <- glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4))
CONTROL_TEXT <- "glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4))  (nlminb, default rel.tol = 1e-10), then the Newton polish + refit from the polished start described at the top"
OUTER <- c("beta", "betazi", "betad", "theta", "thetazi", "psi")

polish <- function(fit, steps = 6) {
  p <- fit$fit$par; fn <- fit$obj$fn; gr <- fit$obj$gr
  f0 <- fn(p); g0 <- max(abs(gr(p)))
  for (k in seq_len(steps)) {
    g <- drop(gr(p)); if (max(abs(g)) < 1e-11) break
    H <- optimHess(p, fn, gr)
    step <- tryCatch(solve(H, g), error = function(e) NULL)
    if (is.null(step)) break
    pn <- p - step; fnew <- fn(pn)
    if (!is.finite(fnew) || fnew > fn(p) + 1e-10 || max(abs(gr(pn))) > max(abs(g))) break
    p <- pn
  }
  if (max(abs(gr(p))) >= 0.1 * g0) { fn(fit$fit$par); return(list(fit = fit, polished = FALSE)) }
  pl <- fit$obj$env$parList(p)
  start <- pl[intersect(OUTER, names(pl))]
  start <- start[vapply(start, length, 0) > 0]
  fit2 <- tryCatch(suppressWarnings(update(fit, start = start)), error = function(e) NULL)
  if (is.null(fit2)) { fn(fit$fit$par); return(list(fit = fit, polished = FALSE)) }
  if (!is.finite(fit2$fit$objective) || fit2$fit$objective > f0 + 1e-9 ||
      max(abs(fit2$obj$gr(fit2$fit$par))) >= g0) { fn(fit$fit$par); return(list(fit = fit, polished = FALSE)) }
  list(fit = fit2, polished = TRUE)
}

vc_terms <- function(fit, part) {
  vc <- VarCorr(fit)[[part]]
  if (is.null(vc) || !length(vc)) return(NULL)
  th <- getME(fit, if (part == "cond") "theta" else "theta")   # (cond theta; zi theta from par below)
  lapply(seq_along(vc), function(i) {
    v <- vc[[i]]
    list(group = names(vc)[i], columns = I(colnames(v)), sd = I(unname(attr(v, "stddev"))),
         corr = unname(attr(v, "correlation")), cov = unname(as.matrix(v)))
  })
}
safe <- function(expr) tryCatch(expr, error = function(e) NULL)
head10 <- function(x) if (is.null(x)) NULL else I(unname(as.numeric(head(x, 10))))

fam_params <- function(fit) {
  f <- family(fit)$family
  sig <- safe(sigma(fit))
  fp <- safe(family_params(fit))
  betad <- fixef(fit)$disp
  res <- list(family = f, link = family(fit)$link)
  if (f %in% c("poisson", "truncated_poisson", "binomial")) return(res)
  res$sigma <- if (length(betad) == 1) sig
  res$sigma_meaning <- switch(f,
    nbinom2 = "phi: Var = mu + mu^2/phi (NB size)", truncated_nbinom2 = "phi: Var = mu + mu^2/phi before truncation",
    nbinom1 = "phi: Var = mu (1 + phi)", truncated_nbinom1 = "phi: Var = mu (1 + phi) before truncation",
    betabinomial = "phi: p ~ Beta(mu phi, (1 - mu) phi)", beta = "phi (precision): y ~ Beta(mu phi, (1 - mu) phi)",
    t = "scale sigma of the Student-t (sd = sigma sqrt(df / (df - 2)))", tweedie = "phi: Var = phi mu^power",
    gaussian = "residual SD", lognormal = "SD of y on the response scale",
    genpois = "phi = exp(betad): Var = phi mu (index of dispersion); Consul-Famoye theta = mu / sqrt(phi), lambda = 1 - 1 / sqrt(phi)",
    Gamma = "1 / sqrt(shape) = exp(-betad / 2), the coefficient of variation: y ~ Gamma(shape = exp(betad), scale = mu / shape), Var = sigma^2 mu^2",
    "see family")
  if (length(betad) == 1 && f != "Gamma") res$sigma_check_exp_betad <- sig - exp(unname(betad))
  if (length(betad) == 1 && f == "Gamma") {
    res$shape <- exp(unname(betad))
    res$sigma_check_inv_sqrt_shape <- sig - 1 / sqrt(exp(unname(betad)))
  }
  if (!is.null(fp)) res$family_params <- as.list(fp)
  if (f == "t") res$df <- unname(fp[1])
  if (f == "tweedie") { res$power <- unname(fp[1]); res$phi <- sig }
  if (f == "beta") res$precision <- sig
  if (f %in% c("nbinom1", "nbinom2", "truncated_nbinom2", "truncated_nbinom1", "betabinomial", "genpois")) res$phi <- sig
  res
}

# ---- density_check (see the header): joint negative log-likelihood from base R densities -------------
re_nll <- function(fit, b, part) {       # -log p(b) for the random-effect terms of one part
  rs <- fit$modelInfo$reStruc[[paste0(part, "ReStruc")]]
  if (!length(rs)) return(0)
  vc <- VarCorr(fit)[[part]]
  nll <- 0; pos <- 0
  for (i in seq_along(rs)) {
    k <- rs[[i]]$blockSize; m <- rs[[i]]$blockReps
    U <- chol(unname(as.matrix(vc[[i]])))
    W <- backsolve(U, matrix(b[pos + seq_len(k * m)], k, m), transpose = TRUE); pos <- pos + k * m
    nll <- nll + 0.5 * (m * k * log(2 * pi) + 2 * m * sum(log(diag(U))) + sum(W^2))
  }
  nll
}
zi_mix <- function(y, ld, pz) ifelse(y == 0, log(pz + (1 - pz) * exp(ld)), log1p(-pz) + ld)   # zero-inflated
hurdle <- function(y, ld_trunc, pz) ifelse(y == 0, log(pz), log1p(-pz) + ld_trunc)            # truncated_*
dgenpois_log <- function(y, mu, phi) {
  th <- mu / sqrt(phi); la <- 1 - 1 / sqrt(phi)
  log(th) + (y - 1) * log(th + la * y) - th - la * y - lgamma(y + 1)
}
density_check <- function(fit, logdens, text) {
  e <- fit$obj$env; d <- e$data
  fit$obj$fn(fit$fit$par)                  # inner optimisation at the reported outer parameters
  full <- e$last.par
  pl <- e$parList(fit$fit$par, full)
  lin <- function(X, beta, Z = NULL, b = NULL, off = 0) {
    v <- if (length(beta)) as.numeric(as.matrix(X) %*% beta) else rep(0, length(d$yobs))
    if (length(b)) v <- v + as.numeric(Z %*% b)
    v + off
  }
  mu <- family(fit)$linkinv(lin(d$X, pl$beta, d$Z, pl$b, d$offset))
  pz <- if (length(pl$betazi)) plogis(lin(d$Xzi, pl$betazi, d$Zzi, pl$bzi, d$zioffset)) else 0
  phi <- exp(lin(d$Xd, pl$betad, off = d$doffset))
  ld <- logdens(y = d$yobs, mu = mu, phi = phi, pz = pz, psi = pl$psi, size = d$size)
  manual <- -sum(d$weights * ld) + re_nll(fit, pl$b, "cond") + re_nll(fit, pl$bzi, "zi")
  tmb <- e$f(full, order = 0)
  res <- list(density = text, joint_nll_tmb = tmb, joint_nll_base_R = manual, difference = manual - tmb)
  if (family(fit)$family == "genpois") {   # moments of the pmf at the row with the largest mu
    i <- which.max(mu); yy <- 0:5000; p <- exp(dgenpois_log(yy, mu[i], phi[i]))
    m1 <- sum(yy * p); v <- sum((yy - m1)^2 * p)
    res$genpois_moments <- list(row = i, mu = mu[i], phi = phi[i], pmf_sum = sum(p), mean = m1, var = v,
                                var_over_phi_mu = v / (phi[i] * mu[i]))
  }
  res
}

tmb_record <- function(id, call, data_name, notes = NULL, logdens = NULL, density_text = NULL) {
  warn <- character(0)
  st <- system.time(fit <- tryCatch(withCallingHandlers(eval(parse(text = call)),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") }),
    error = function(e) e))
  secs <- unname(st[["elapsed"]])
  if (inherits(fit, "error")) {
    cat(sprintf("%-22s ERROR %s\n", id, conditionMessage(fit)))
    return(list(id = id, package = "glmmTMB", version = as.character(packageVersion("glmmTMB")), call = call,
                control = CONTROL_TEXT, data = data_name, error = conditionMessage(fit), warnings = I(warn),
                convergence = list(converged = FALSE), seconds = secs, notes = notes))
  }
  first <- list(objective = fit$fit$objective, convergence = fit$fit$convergence, message = fit$fit$message,
                max_abs_grad = max(abs(fit$obj$gr(fit$fit$par))), pdHess = fit$sdr$pdHess, warnings = I(warn))
  pol <- polish(fit); fit <- pol$fit
  dcheck <- if (!is.null(logdens)) tryCatch(density_check(fit, logdens, density_text),
                                            error = function(e) list(error = conditionMessage(e)))
  ll <- -fit$fit$objective
  par <- fit$fit$par
  df <- length(par)
  gmax <- max(abs(fit$obj$gr(par)))
  fe <- fixef(fit); vc <- safe(vcov(fit))
  se_of <- function(part) {
    if (!length(fe[[part]])) return(NULL)
    v <- vc[[part]]; if (is.null(v)) return(NULL)
    as.list(setNames(sqrt(diag(as.matrix(v))), names(fe[[part]])))
  }
  parts <- c("cond", "zi", "disp")
  fixef_out <- setNames(lapply(parts, function(p) if (length(fe[[p]])) as.list(fe[[p]])), parts)
  se_out <- setNames(lapply(parts, se_of), parts)
  has_zi <- length(fe$zi) > 0
  converged <- isTRUE(fit$sdr$pdHess) && is.finite(ll) && gmax < 1e-3
  hess_eig <- tryCatch(range(eigen(optimHess(par, fit$obj$fn, fit$obj$gr), symmetric = TRUE, only.values = TRUE)$values),
                       error = function(e) c(NA, NA))
  pn <- names(par)
  gauss_check <- NULL
  if (family(fit)$family == "gaussian") {   # exact marginal Gaussian logLik with Var(e_i) = exp(Xd betad)
    Z <- as.matrix(getME(fit, "Z")); X <- as.matrix(getME(fit, "X")); Xd <- as.matrix(getME(fit, "Xd"))
    G <- as.matrix(Matrix::bdiag(rep(list(unname(as.matrix(VarCorr(fit)$cond[[1]]))), ncol(Z) / nrow(VarCorr(fit)$cond[[1]]))))
    V <- Z %*% G %*% t(Z) + diag(exp(drop(Xd %*% fe$disp)))
    y <- fit$obj$env$data$yobs; r <- y - drop(X %*% fe$cond); U <- chol(V)
    lle <- -0.5 * (length(y) * log(2 * pi) + 2 * sum(log(diag(U))) + sum(backsolve(U, r, transpose = TRUE)^2))
    gauss_check <- list(logLik_exact_variance_exp_eta = lle, logLik_exact_minus_glmmTMB = lle - ll,
                        predict_disp_minus_exp_half_eta = max(abs(head(predict(fit, type = "disp"), 10) -
                                                                  head(exp(drop(Xd %*% fe$disp) / 2), 10))))
  }
  rec <- list(
    id = id, package = "glmmTMB", version = as.character(packageVersion("glmmTMB")),
    call = call, control = CONTROL_TEXT, data = data_name, REML = isTRUE(fit$modelInfo$REML), nobs = nobs(fit),
    family = family(fit)$family, link = family(fit)$link,
    formula = deparse1(fit$modelInfo$allForm$formula), ziformula = deparse1(fit$modelInfo$allForm$ziformula),
    dispformula = deparse1(fit$modelInfo$allForm$dispformula),
    logLik = ll, objective = -2 * ll, df = df, AIC = -2 * ll + 2 * df,
    logLik_R = safe(as.numeric(logLik(fit))), AIC_R = safe(AIC(fit)),
    fixef = fixef_out, fixef_se = se_out,
    varcorr = list(cond = vc_terms(fit, "cond"), zi = vc_terms(fit, "zi")),
    par = list(values = I(unname(par)), names = I(pn)),
    theta = I(unname(par[pn == "theta"])), thetazi = if (any(pn == "thetazi")) I(unname(par[pn == "thetazi"])),
    psi = if (any(pn == "psi")) I(unname(par[pn == "psi"])),
    family_params = fam_params(fit),
    convergence = list(converged = converged, pdHess = fit$sdr$pdHess, code = fit$fit$convergence,
                       message = fit$fit$message, max_abs_grad = gmax, polished = pol$polished),
    zi_boundary = has_zi && any(abs(fe$zi) > 10), gaussian_check = gauss_check,
    optimizer_first = first, seconds = secs, hessian_eigen_range = I(hess_eig),
    fitted_head = head10(fitted(fit)),
    predict_link_head = head10(safe(predict(fit, type = "link"))),
    predict_conditional_head = head10(safe(predict(fit, type = "conditional"))),
    predict_zprob_head = if (has_zi) head10(safe(predict(fit, type = "zprob"))),
    predict_zlink_head = if (has_zi) head10(safe(predict(fit, type = "zlink"))),
    predict_disp_head = head10(safe(predict(fit, type = "disp"))),
    notes = notes)
  if (!is.null(dcheck)) rec$density_check <- dcheck
  cat(sprintf("%-24s conv=%d ll=%14.8f df=%2d g=%.0e pd=%s pol=%s %.2fs%s\n", id, converged, ll, df, gmax,
              fit$sdr$pdHess, pol$polished, secs,
              if (is.null(dcheck$difference)) "" else sprintf(" dens.diff=%.1e", dcheck$difference)))
  rec
}

fits <- list()
add <- function(rec) fits[[rec$id]] <<- rec
# ---- 1. Salamanders (glmmTMB vignette "glmmTMB", section on zero-inflation) -------------------------
add(tmb_record("sal_zip",
  "glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~ mined, family = poisson, data = salamanders, control = ctl)",
  "salamanders", notes = "zero-inflated Poisson (vignette zipm3)"))
add(tmb_record("sal_zinb2",
  "glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~ spp, family = nbinom2, data = salamanders, control = ctl)",
  "salamanders", notes = "zero-inflated NB2 (vignette zinbm2). Boundary: the zi probability of species GP (reference) and DM goes to 0 (zi coefficients ~ -24 and -28 on the logit scale, arbitrary), so the Hessian is singular (pdHess FALSE, NaN/huge SEs) and converged = FALSE; logLik and the cond part are well determined"))
add(tmb_record("sal_hnb2",
  "glmmTMB(count ~ spp + (1 | site), ziformula = ~ spp, family = truncated_nbinom2, data = salamanders, control = ctl)",
  "salamanders", notes = "hurdle NB2: zi part = P(y = 0); positive counts from the zero-truncated NB2"))
add(tmb_record("sal_nb1",
  "glmmTMB(count ~ spp + mined + (1 | site), family = nbinom1, data = salamanders, control = ctl)",
  "salamanders"))
add(tmb_record("sal_nb2",
  "glmmTMB(count ~ spp + mined + (1 | site), family = nbinom2, data = salamanders, control = ctl)",
  "salamanders"))
# ---- 2. Owls (Brooks et al. 2017, R Journal; NCalls = SiblingNegotiation, FT = FoodTreatment) -----
add(tmb_record("owls_zinb1",
  "glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest), ziformula = ~ 1, family = nbinom1, data = owls, control = ctl)",
  "owls", notes = "the paper's NCalls is the package column SiblingNegotiation, FT is FoodTreatment; the paper also reorders Nest levels by NegPerChick (no effect on the fit)"))
add(tmb_record("owls_nb1",
  "glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest), family = nbinom1, data = owls, control = ctl)",
  "owls"))
add(tmb_record("owls_zinb1_paper",
  "glmmTMB(SiblingNegotiation ~ (FoodTreatment + ArrivalTime) * SexParent + offset(log(BroodSize)) + (1 | Nest), ziformula = ~ 1, family = nbinom1, data = owls, control = ctl)",
  "owls", notes = "the exact fixed effects of the paper's fit_zinbinom1 (with ArrivalTime)"))
# ---- 3. cbpp beta-binomial ----------------------------------------------------------------------------
add(tmb_record("cbpp_betabin",
  "glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial, data = cbpp, control = ctl)",
  "cbpp"))
# ---- 4. sleepstudy: Student-t, Gaussian with a dispersion model --------------------------------------
add(tmb_record("ss_t",
  "glmmTMB(Reaction ~ Days + (Days | Subject), family = t_family, data = sleepstudy, control = ctl)",
  "sleepstudy", notes = "df estimated (psi = log df)"))
add(tmb_record("ss_gauss_disp",
  "glmmTMB(Reaction ~ Days + (Days | Subject), dispformula = ~ Days, family = gaussian, data = sleepstudy, control = ctl)",
  "sleepstudy", notes = "heteroscedastic residual: see predict_disp_head and the betad / sigma checks for the scale of the disp linear predictor"))
# ---- 5. beta, Tweedie, lognormal ---------------------------------------------------------------------
add(tmb_record("betasim_beta",
  "glmmTMB(y ~ x + (1 | g), family = beta_family(), data = betasim, control = ctl)",
  "betasim", notes = "simulated with intercept -0.5, slope 0.8, SD(b) 0.5, precision 15"))
add(tmb_record("tweediesim_tweedie",
  "glmmTMB(y ~ x + (1 | g), family = tweedie(), data = tweediesim, control = ctl)",
  "tweediesim", notes = "simulated with intercept 0.3, slope 0.7, SD(b) 0.4, power 1.6, phi 1.2"))
# (lognormal: not available in glmmTMB 1.1.5 (no lognormal family; added in a later version), so no fit.)
# ---- 6. Second batch: hurdle Poisson / NB1, dispersion models, zi random effect, genpois, t with fixed
#         df, zero-inflated binomial, Gamma (each with a density_check) ------------------------------------
add(tmb_record("sal_hpois",
  "glmmTMB(count ~ spp + (1 | site), ziformula = ~ spp, family = truncated_poisson, data = salamanders, control = ctl)",
  "salamanders", notes = "hurdle Poisson: zi part = P(y = 0); positive counts from the zero-truncated Poisson",
  logdens = function(y, mu, pz, ...) hurdle(y, dpois(y, mu, log = TRUE) - log1p(-exp(-mu)), pz),
  density_text = "hurdle: log p0 (y = 0); log(1 - p0) + dpois(y, mu, log) - log(1 - exp(-mu)) (y > 0)"))
add(tmb_record("sal_hnb1",
  "glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~ mined, family = truncated_nbinom1, data = salamanders, control = ctl)",
  "salamanders", notes = "hurdle NB1: zi part = P(y = 0); positive counts from the zero-truncated NB1 (Var = mu (1 + phi) before truncation)",
  logdens = function(y, mu, phi, pz, ...)
    hurdle(y, dnbinom(y, size = mu / phi, prob = 1 / (1 + phi), log = TRUE) - log1p(-(1 + phi)^(-mu / phi)), pz),
  density_text = "hurdle: log p0 (y = 0); log(1 - p0) + dnbinom(y, size = mu/phi, prob = 1/(1+phi), log) - log(1 - (1+phi)^(-mu/phi)) (y > 0)"))
add(tmb_record("sal_nb2_disp",
  "glmmTMB(count ~ spp + mined + (1 | site), dispformula = ~ mined, family = nbinom2, data = salamanders, control = ctl)",
  "salamanders", notes = "NB2 with phi = exp(betad_0 + betad_1 minedno) (Var = mu + mu^2/phi per row)",
  logdens = function(y, mu, phi, ...) dnbinom(y, size = phi, mu = mu, log = TRUE),
  density_text = "dnbinom(y, size = phi, mu = mu, log), phi = exp(Xd betad)"))
add(tmb_record("sal_zip_zire",
  "glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~ mined + (1 | site), family = poisson, data = salamanders, control = ctl)",
  "salamanders", notes = "zero-inflated Poisson with a site random intercept in the zi (logit) part as well: thetazi = log SD of the zi site effect; varcorr$zi",
  logdens = function(y, mu, pz, ...) zi_mix(y, dpois(y, mu, log = TRUE), pz),
  density_text = "zero-inflated: log(p0 + (1 - p0) dpois(0, mu)) (y = 0); log(1 - p0) + dpois(y, mu, log) (y > 0); p0 = plogis(Xzi betazi + Zzi bzi); bzi ~ N(0, exp(thetazi)^2)"))
add(tmb_record("sal_genpois",
  "glmmTMB(count ~ spp + mined + (1 | site), family = genpois, data = salamanders, control = ctl)",
  "salamanders", notes = "generalized Poisson, Var = phi mu with phi = sigma(fit) = exp(betad) (see the header)",
  logdens = function(y, mu, phi, ...) dgenpois_log(y, mu, phi),
  density_text = "log th + (y - 1) log(th + la y) - th - la y - lgamma(y + 1), th = mu/sqrt(phi), la = 1 - 1/sqrt(phi)"))
add(tmb_record("ss_t_df4",
  "glmmTMB(Reaction ~ Days + (Days | Subject), family = t_family, data = sleepstudy, control = ctl, start = list(psi = log(4)), map = list(psi = factor(NA)))",
  "sleepstudy", notes = "Student-t with df fixed at 4 (psi = log 4 mapped, the recipe in ?t_family of glmmTMB 1.1.5): psi is not estimated, not in par, not counted in df; family_params gives df = 4",
  logdens = function(y, mu, phi, psi, ...) dt((y - mu) / phi, df = exp(psi), log = TRUE) - log(phi),
  density_text = "dt((y - mu)/sigma, df = exp(psi), log) - log(sigma), sigma = exp(betad) (scale)"))
add(tmb_record("betasim_beta_disp",
  "glmmTMB(y ~ x + (1 | g), dispformula = ~ x, family = beta_family(), data = betasim, control = ctl)",
  "betasim", notes = "beta with precision phi = exp(betad_0 + betad_1 x) (the data were simulated with a constant precision 15, so betad_1 should be near 0)",
  logdens = function(y, mu, phi, ...) dbeta(y, mu * phi, (1 - mu) * phi, log = TRUE),
  density_text = "dbeta(y, mu phi, (1 - mu) phi, log), phi = exp(Xd betad)"))
add(tmb_record("cbpp_zibin",
  "glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), ziformula = ~ 1, family = binomial, data = cbpp, control = ctl)",
  "cbpp", notes = "zero-inflated binomial: P(incidence = 0) = p0 + (1 - p0) (1 - p)^size",
  logdens = function(y, mu, pz, size, ...) zi_mix(y, dbinom(y, size, mu, log = TRUE), pz),
  density_text = "zero-inflated: log(p0 + (1 - p0) dbinom(0, size, p)) (y = 0); log(1 - p0) + dbinom(y, size, p, log) (y > 0); y = incidence"))
add(tmb_record("tweediesim_tweedie_disp",
  "glmmTMB(y ~ x + (1 | g), dispformula = ~ x, family = tweedie(), data = tweediesim, control = ctl)",
  "tweediesim", notes = "Tweedie with phi = exp(betad_0 + betad_1 x), power = 1 + plogis(psi) (simulated with a constant phi 1.2, so betad_1 should be near 0); no density_check (no Tweedie density in base R)"))
add(tmb_record("ss_gamma",
  "glmmTMB(Reaction ~ Days + (1 | Subject), family = Gamma(link = \"log\"), data = sleepstudy, control = ctl)",
  "sleepstudy", notes = "Gamma, log link: shape = exp(betad), sigma(fit) = 1/sqrt(shape) (coefficient of variation); Var = sigma^2 mu^2",
  logdens = function(y, mu, phi, ...) dgamma(y, shape = phi, scale = mu / phi, log = TRUE),
  density_text = "dgamma(y, shape = phi, scale = mu/phi, log), phi = exp(betad) = 1/sigma(fit)^2"))

writeLines(toJSON(list(
  description = "glmmTMB fits with non-Gaussian families, zero-inflation, hurdles and dispersion models (mixedfx issue 11); see make_glmmtmb_families.R",
  glmmTMB_version = as.character(packageVersion("glmmTMB")), TMB_version = as.character(packageVersion("TMB")),
  R = R.version.string, control = CONTROL_TEXT,
  datasets = datasets, fits = unname(fits)),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "with", length(fits), "fits\n")
