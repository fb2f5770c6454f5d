# performance::icc() / performance::r2_nakagawa() and insight::get_variance() reference values for the
# glmmTMB family fits of make_glmmtmb_families.R and the ordinal clmm wine fits of make_clmm.R
# (mixedfx: ICC and Nakagawa R2 beyond lme4 families; see src/mixedfx/results/variance.py).
# Usage (from the repository root):
#   OPENBLAS_NUM_THREADS=1 Rscript tests/reference/make_performance_families.R tests/reference/performance_families.json
# Data: the bundled copies src/mixedfx/datasets/data/*.csv.gz, loaded exactly as make_glmmtmb_families.R
# (load_bundled) and make_clmm.R (wine, rating an ordered factor). Deterministic (no random numbers);
# one BLAS thread.
#
# Fits: glmmTMB with glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4)) and the same Newton
# polish + refit as make_glmmtmb_families.R (so each fit is the one recorded in glmmtmb_families.json;
# "logLik" here can be compared with it). After the polish the refit's call carries `start = start`;
# that argument is removed from fit$call so that insight's null-model refit (update(fit, ~ (RE terms)))
# starts from glmmTMB's defaults exactly as for a user's fit. clmm: ordinal's defaults (nlminb), the
# cloglog fit with control = clmm.control(useMatrix = TRUE) (the scalar-RE fast path of ordinal
# 2022.11.16 silently fits loglog for link = "cloglog"; see make_clmm.R).
#
# Per record: get_variance(fit) (all components insight returns), icc(fit) (ICC_adjusted,
# ICC_conditional), r2_nakagawa(fit) (R2_marginal, R2_conditional), each with the warnings, messages and
# printed text (insight::print_color) it produced; model_info(fit) family / link; for the families where
# insight uses it, the null model that insight itself refits (insight::null_model(fit); its conditional
# intercept b0_null and mu0 = exp(b0_null), its logLik and max |gradient|) and, for information, the
# same null model after our Newton polish (b0_null_polished; insight does not polish). Every number of
# performance/insight here comes from insight's unpolished null model.
#
# insight 0.19.0 has no `approximation`/`approx_method` argument: for non-Gaussian families the only
# method is the one below (the log-normal approximation var.distribution = log1p(V(mu0) / mu0^2) with
# mu0 = exp(b0_null) for "count"/beta/beta-binomial/Tweedie families), or a closed form.
#
# How insight 0.19.0 computes var.distribution (read from its source: .compute_variance_distribution,
# .variance_distributional, .variance_family_*; sig = attr(VarCorr(fit)$cond, "sc") = sigma(fit) for
# glmmTMB); "distribution_formula" in each record states the family's case and "distribution_check"
# recomputes it here from sigma(fit), family_params and b0_null (difference ~ 0 confirms the formula):
#   gaussian / lmm         : sigma(fit)^2.
#   poisson (log)          : log1p(1 / mu0).
#   nbinom2 (log)          : log1p(family$variance(mu0, sig) / mu0^2) = log1p(1/mu0 + 1/sig), sig = theta.
#   nbinom1 (log)          : log1p(mu0 (1 + sig) / mu0^2) = log1p((1 + sig) / mu0).
#   genpois (log)          : glmmTMB's genpois()$variance(mu, phi) = mu phi, so log1p(sig / mu0).
#   betabinomial (logit)   : falls to .variance_family_default: V = mu0 (1 + mu0 / theta) with
#                            theta = getME(fit, "theta") = glmmTMB's random-effect parameter vector (log
#                            SD of the grouping factor!), not the beta-binomial phi; mu0 = exp(b0_null)
#                            although the link is logit; log1p(V / mu0^2) = log1p(1/mu0 + 1/theta).
#   beta (logit)           : V = mu0 (1 - mu0) / (1 + sig), sig = precision phi, mu0 = exp(b0_null) (exp,
#                            not plogis); log1p(V / mu0^2) = log1p((1 - mu0) / (mu0 (1 + phi))).
#   tweedie (log)          : V = sig mu0^p, p = 1 + plogis(psi); log1p(sig mu0^(p - 2)).
#   Gamma (log)            : family$variance(sig) = sig^2 = sigma(fit)^2 = 1/shape (glmmTMB's sigma is
#                            1/sqrt(shape)); no log1p, no null model.
#   t_family (identity)    : model_info says not linear/count/binomial/Gamma/beta/Tweedie, so insight's
#                            catch-all "dist.variance <- sig": sigma(fit) = the t SCALE, not squared.
#   clmm logit / probit    : model_info.clmm gives binomial(link): pi^2/3 / 1.
#   clmm cloglog           : insight:::.get_ordinal_link maps "cloglog" to "log", binomial(link = "log")
#                            is not a supported latent link (.badlink): var.distribution = NA, so the
#                            ICC and R2 are NA (with the warning text recorded).
# var.dispersion = 0 throughout (no observation-level random effects); var.residual = var.distribution +
# var.dispersion. var.fixed = var(X beta) (n - 1; for clmm X includes a column of ones with beta 1);
# var.random = sum over terms of mean_i z_i' G z_i; get_variance drops var.random when some random-effect
# variance is < tolerance 1e-5 ("singular"; then icc() is NA and r2_nakagawa() gives R2_conditional NA and
# R2_marginal = var.fixed / (var.fixed + var.residual)).
suppressPackageStartupMessages({
  library(glmmTMB); library(ordinal); library(jsonlite); library(performance); library(insight)
})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_performance_families.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))      # fingerprint()
source(file.path(here, "bundled.R"))          # datadir, manifest, datasets, load_bundled(), fp_data()

datasets <- list()
salamanders <- fp_data("salamanders", load_bundled("salamanders"))
cbpp <- fp_data("cbpp", load_bundled("cbpp"))
sleepstudy <- fp_data("sleepstudy", load_bundled("sleepstudy"))
betasim <- fp_data("betasim", load_bundled("betasim"))
tweediesim <- fp_data("tweediesim", load_bundled("tweediesim"))
wine <- load_bundled("wine")                  # as make_clmm.R: rating an ordered factor "1" < ... < "5"
wine$rating <- factor(wine$rating, levels = manifest$wine$factors$rating, ordered = TRUE)
wine <- fp_data("wine", wine)

ctl <- glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4))
CONTROL_TMB <- "glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4)), then the Newton polish + refit of make_glmmtmb_families.R; `start` then removed from fit$call"
CONTROL_CLMM <- "ordinal defaults (clmm.control(): nlminb)"
OUTER <- c("beta", "betazi", "betad", "theta", "thetazi", "psi")

polish <- function(fit, steps = 6) {          # as make_glmmtmb_families.R
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
  fit2$call$start <- NULL                     # so that insight's update() of the null model starts afresh
  list(fit = fit2, polished = TRUE)
}

# Evaluate expr, keeping its value, warnings, messages and printed text (insight::print_color uses cat()).
capture <- function(expr) {
  warn <- character(0); msg <- character(0)
  txt <- capture.output(value <- withCallingHandlers(
    tryCatch(expr, error = function(e) structure(list(message = conditionMessage(e)), class = "captured_error")),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { msg <<- c(msg, conditionMessage(m)); invokeRestart("muffleMessage") }))
  txt <- trimws(gsub("\033\\[[0-9;]*m", "", txt)); txt <- txt[nzchar(txt)]
  squash <- function(x) trimws(gsub("\\s+", " ", x))   # format_warning() wraps its text over lines
  list(value = value, warnings = I(squash(warn)), messages = I(squash(msg)), output = I(txt),
       error = if (inherits(value, "captured_error")) value$message)
}
num <- function(x) if (is.null(x) || length(x) == 0) NULL else if (length(x) == 1 && is.na(x)) NA else unname(as.numeric(x))
named <- function(x) if (is.null(x)) NULL else as.list(setNames(as.numeric(x), names(x)))

DIST_FORMULA <- list(
  gaussian = "sigma(fit)^2 (faminfo$is_linear: sig^2)",
  poisson = "log1p(1 / mu0), mu0 = exp(b0_null) (.variance_distributional: log1p(V(mu0) / mu0^2), V = poisson()$variance(mu0) = mu0)",
  nbinom2 = "log1p(V / mu0^2) with V = nbinom2()$variance(mu0, sig) = mu0 (1 + mu0 / sig): log1p(1/mu0 + 1/sig), sig = sigma(fit) = theta (NB size), mu0 = exp(b0_null)",
  nbinom1 = "log1p(V / mu0^2) with V = nbinom1()$variance(mu0, sig) = mu0 (1 + sig): log1p((1 + sig) / mu0), sig = sigma(fit) = phi, mu0 = exp(b0_null)",
  genpois = "log1p(V / mu0^2) with V = genpois()$variance(mu0, sig) = mu0 sig: log1p(sig / mu0), sig = sigma(fit) = phi (Var = phi mu), mu0 = exp(b0_null)",
  betabinomial = "log1p(V / mu0^2) with V = .variance_family_default = mu0 (1 + mu0 / theta), theta = getME(fit, 'theta') = glmmTMB's random-effect parameter (log SD of the grouping factor), NOT the beta-binomial phi; mu0 = exp(b0_null) although the link is logit: log1p(1/mu0 + 1/theta)",
  beta = "log1p(V / mu0^2) with V = .variance_family_beta = mu0 (1 - mu0) / (1 + phi), phi = sigma(fit) (precision), mu0 = exp(b0_null) (exp, not plogis, although the link is logit): log1p((1 - mu0) / (mu0 (1 + phi)))",
  tweedie = "log1p(V / mu0^2) with V = .variance_family_tweedie = phi mu0^p, phi = sigma(fit), p = 1 + plogis(psi) (fit$fit$par['psi']): log1p(phi mu0^(p - 2)), mu0 = exp(b0_null)",
  Gamma = "family(fit)$variance(sig) = sig^2 = sigma(fit)^2 = 1 / shape (glmmTMB's sigma = 1/sqrt(shape), the CV); no log1p, no null model",
  t = "sigma(fit) (the Student-t SCALE, not squared): model_info(fit) is not linear/count/binomial/Gamma/beta/Tweedie, so insight's catch-all dist.variance <- sig applies",
  clmm_logit = "pi^2 / 3 (model_info.clmm: binomial(link = 'logit'), latent logistic variance)",
  clmm_probit = "1 (model_info.clmm: binomial(link = 'probit'))",
  clmm_cloglog = "NA: insight:::.get_ordinal_link maps clmm's 'cloglog' to 'log', and binomial(link = 'log') has no latent variance (.badlink warning), so var.distribution, var.residual, the ICC and R2 are NA")
USES_NULL <- c("poisson", "nbinom2", "nbinom1", "genpois", "betabinomial", "beta", "tweedie")

dist_check <- function(key, fit, mu0) {       # var.distribution recomputed from the formula above
  sig <- if (inherits(fit, "glmmTMB")) sigma(fit) else NA
  switch(key,
    gaussian = sig^2, poisson = log1p(1 / mu0), nbinom2 = log1p(1 / mu0 + 1 / sig),
    nbinom1 = log1p((1 + sig) / mu0), genpois = log1p(sig / mu0),
    betabinomial = { th <- getME(fit, "theta"); log1p(mu0 * (1 + mu0 / th) / mu0^2) },
    beta = log1p((1 - mu0) / (mu0 * (1 + sig))),
    tweedie = log1p(sig * mu0^(1 + plogis(fit$fit$par[["psi"]]) - 2)),
    Gamma = sig^2, t = sig, clmm_logit = pi^2 / 3, clmm_probit = 1, clmm_cloglog = NA)
}

null_info <- function(fit) {                  # the null model insight refits, and our polished copy
  nm <- capture(insight::null_model(fit))
  m <- nm$value
  if (is.null(m) || inherits(m, "captured_error"))
    return(list(error = if (is.null(m)) "null_model() returned NULL" else m$message, warnings = nm$warnings))
  b0 <- unname(fixef(m)$cond[["(Intercept)"]])
  pm <- polish(m)$fit
  b0p <- unname(fixef(pm)$cond[["(Intercept)"]])
  list(formula = deparse1(formula(m)), b0_null = b0, mu0 = exp(b0), logLik = -m$fit$objective,
       max_abs_grad = max(abs(m$obj$gr(m$fit$par))), pdHess = m$sdr$pdHess,
       convergence_code = m$fit$convergence, sigma = if (family(m)$family %in% c("poisson", "binomial")) NULL else sigma(m),
       theta = I(unname(m$fit$par[names(m$fit$par) == "theta"])),
       b0_null_polished = b0p, logLik_polished = -pm$fit$objective,
       max_abs_grad_polished = max(abs(pm$obj$gr(pm$fit$par))), warnings = nm$warnings, messages = nm$messages,
       output = nm$output)
}

record <- function(id, call, data_name, key, notes = NULL) {
  fitc <- capture(eval(parse(text = call), envir = globalenv()))
  if (!is.null(fitc$error)) stop(id, ": ", fitc$error)
  fit <- fitc$value
  is_tmb <- inherits(fit, "glmmTMB")
  polished <- NULL
  if (is_tmb) { pol <- polish(fit); fit <- pol$fit; polished <- pol$polished }
  assign(".fit_current", fit, envir = globalenv())
  gv <- capture(insight::get_variance(fit))
  ic <- capture(performance::icc(fit))
  r2 <- capture(performance::r2_nakagawa(fit))
  mi <- insight::model_info(fit, verbose = FALSE)
  nul <- if (is_tmb && key %in% USES_NULL) null_info(fit)
  v <- gv$value
  if (inherits(v, "captured_error") || is.null(v)) v <- list()
  mu0 <- if (!is.null(nul$mu0)) nul$mu0 else NA
  chk <- dist_check(key, fit, mu0)
  vd <- if (is.null(v$var.distribution)) NA else v$var.distribution
  icv <- ic$value; r2v <- r2$value
  icc_ok <- is.data.frame(icv)
  r2_ok <- is.list(r2v) && !is.null(r2v$R2_marginal)
  ll <- if (is_tmb) -fit$fit$objective else as.numeric(logLik(fit))
  gmax <- if (is_tmb) max(abs(fit$obj$gr(fit$fit$par))) else max(abs(fit$gradient))
  rec <- list(
    id = id, package = if (is_tmb) "glmmTMB" else "ordinal",
    version = as.character(packageVersion(if (is_tmb) "glmmTMB" else "ordinal")),
    call = call, control = if (is_tmb) CONTROL_TMB else CONTROL_CLMM, data = data_name,
    family = if (is_tmb) family(fit)$family else "cumulative (clmm)", link = if (is_tmb) family(fit)$link else fit$link,
    model_info = list(family = mi$family, link_function = mi$link_function, is_linear = mi$is_linear,
                      is_count = mi$is_count, is_binomial = mi$is_binomial, is_tweedie = mi$is_tweedie,
                      is_betabinomial = isTRUE(mi$is_betabinomial)),
    logLik = ll, max_abs_grad = gmax, polished = polished, fit_warnings = fitc$warnings,
    sigma = if (is_tmb && !family(fit)$family %in% c("poisson", "binomial")) sigma(fit),
    family_params = if (is_tmb) { fp <- tryCatch(family_params(fit), error = function(e) NULL); if (length(fp)) named(fp) },
    theta = if (is_tmb) I(unname(fit$fit$par[names(fit$fit$par) == "theta"])),
    get_variance = list(
      var.fixed = num(v$var.fixed), var.random = num(v$var.random), var.residual = num(v$var.residual),
      var.distribution = num(v$var.distribution), var.dispersion = num(v$var.dispersion),
      var.intercept = named(v$var.intercept), var.slope = named(v$var.slope),
      cor.slope_intercept = named(v$cor.slope_intercept),
      warnings = gv$warnings, messages = gv$messages, output = gv$output, error = gv$error),
    icc = list(adjusted = if (icc_ok) icv$ICC_adjusted else NA, conditional = if (icc_ok) icv$ICC_conditional else NA,
               warnings = ic$warnings, messages = ic$messages, output = ic$output, error = ic$error),
    r2_nakagawa = list(marginal = if (r2_ok) num(r2v$R2_marginal) else NA,
                       conditional = if (r2_ok) num(r2v$R2_conditional) else NA,
                       warnings = r2$warnings, messages = r2$messages, output = r2$output, error = r2$error),
    null_model = nul,
    null_model_used = key %in% USES_NULL,
    distribution_formula = DIST_FORMULA[[key]],
    distribution_check = list(recomputed = num(chk), insight = num(vd),
                              difference = if (is.na(chk) || is.na(vd)) NA else unname(chk - vd)),
    notes = notes)
  cat(sprintf("%-22s f=%-9.6g r=%-9.6g dist=%-9.6g iccA=%-9.6g iccC=%-9.6g R2m=%-9.6g R2c=%-9.6g chk=%.1e b0=%s w=%d\n",
              id, num(v$var.fixed) %||% NA, num(v$var.random) %||% NA, vd, rec$icc$adjusted, rec$icc$conditional,
              rec$r2_nakagawa$marginal, rec$r2_nakagawa$conditional, rec$distribution_check$difference %||% NA,
              if (is.null(nul$b0_null)) "-" else sprintf("%.6f", nul$b0_null), length(gv$warnings) + length(ic$warnings) + length(r2$warnings)))
  rec
}
`%||%` <- function(a, b) if (is.null(a)) b else a

fits <- list()
add <- function(rec) fits[[rec$id]] <<- rec
add(record("sal_nb2",
  "glmmTMB(count ~ spp + mined + (1 | site), family = nbinom2, data = salamanders, control = ctl)",
  "salamanders", "nbinom2"))
add(record("sal_nb1",
  "glmmTMB(count ~ spp + mined + (1 | site), family = nbinom1, data = salamanders, control = ctl)",
  "salamanders", "nbinom1"))
add(record("sal_genpois",
  "glmmTMB(count ~ spp + mined + (1 | site), family = genpois, data = salamanders, control = ctl)",
  "salamanders", "genpois"))
add(record("sal_pois_tmb",
  "glmmTMB(count ~ spp + mined + (1 | site), family = poisson, data = salamanders, control = ctl)",
  "salamanders", "poisson", notes = "new fit (not in glmmtmb_families.json): Poisson, no zero-inflation"))
add(record("cbpp_betabin",
  "glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial, data = cbpp, control = ctl)",
  "cbpp", "betabinomial",
  notes = paste("the herd variance is ~5e-11 (< insight's tolerance 1e-5): get_variance drops var.random (singular), icc() is NA,",
                "r2_nakagawa() gives R2_conditional NA and R2_marginal = var.fixed / (var.fixed + var.residual).",
                "var.distribution uses theta = the herd log-SD, which is arbitrary at this boundary (-11.9 after the polish,",
                "-8.9 at nlminb's first answer: var.distribution 2.1497 vs 2.1464), so it is not well determined")))
add(record("ss_t",
  "glmmTMB(Reaction ~ Days + (Days | Subject), family = t_family, data = sleepstudy, control = ctl)",
  "sleepstudy", "t", notes = "var.distribution = sigma(fit) (the t scale), not its square: insight's catch-all branch"))
add(record("ss_gauss_tmb",
  "glmmTMB(Reaction ~ Days + (Days | Subject), family = gaussian, data = sleepstudy, control = ctl)",
  "sleepstudy", "gaussian", notes = "new fit (not in glmmtmb_families.json): Gaussian, ML, no dispformula"))
add(record("betasim_beta",
  "glmmTMB(y ~ x + (1 | g), family = beta_family(), data = betasim, control = ctl)",
  "betasim", "beta"))
add(record("tweediesim_tweedie",
  "glmmTMB(y ~ x + (1 | g), family = tweedie(), data = tweediesim, control = ctl)",
  "tweediesim", "tweedie"))
add(record("ss_gamma",
  "glmmTMB(Reaction ~ Days + (1 | Subject), family = Gamma(link = \"log\"), data = sleepstudy, control = ctl)",
  "sleepstudy", "Gamma", notes = "var.distribution = sigma(fit)^2 = 1/shape, not log1p(...): insight's Gamma branch is family(fit)$variance(sigma)"))
add(record("wine_logit",
  "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'logit')",
  "wine", "clmm_logit"))
add(record("wine_probit",
  "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'probit')",
  "wine", "clmm_probit"))
add(record("wine_cloglog",
  "clmm(rating ~ temp + contact + (1 | judge), data = wine, link = 'cloglog', control = clmm.control(useMatrix = TRUE))",
  "wine", "clmm_cloglog",
  notes = "useMatrix = TRUE: the true cloglog model (see make_clmm.R). insight maps the clmm cloglog link to 'log' and returns var.distribution = NA, so icc() and r2_nakagawa() are NA"))

writeLines(toJSON(list(
  description = "performance::icc / r2_nakagawa and insight::get_variance for glmmTMB family fits and ordinal clmm fits; see make_performance_families.R (the header states insight's var.distribution formula per family)",
  performance_version = as.character(packageVersion("performance")),
  insight_version = as.character(packageVersion("insight")),
  glmmTMB_version = as.character(packageVersion("glmmTMB")), TMB_version = as.character(packageVersion("TMB")),
  ordinal_version = as.character(packageVersion("ordinal")), R = R.version.string,
  approx_method = "insight 0.19.0 has no approximation argument: log-normal approximation log1p(V(mu0)/mu0^2), mu0 = exp(intercept of insight::null_model(fit)), for the count, beta, beta-binomial and Tweedie families; closed forms otherwise (see distribution_formula)",
  datasets = datasets, fits = unname(fits)),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = FALSE), out)
cat("wrote", out, "with", length(fits), "fits\n")
