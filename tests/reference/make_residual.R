# nlme reference fits with residual correlation / variance models (lme and gls), plus glmmTMB Gaussian
# fits with a dispersion model (mixedfx issue 10).
# Usage (from the repository root): Rscript tests/reference/make_residual.R tests/reference/residual.json
# Data: the bundled copies src/mixedfx/datasets/data/*.csv.gz (factor levels from datasets.json).
# Deterministic; single-threaded reference BLAS.
#
# nlme conventions recorded per fit (nlme 3.1-162):
#   corAR1(form = ~ 1 | g)     : phi^|i - j| for the i-th and j-th observation of a group (row order).
#   corAR1(form = ~ time | g)  : phi^|t_i - t_j|, t an integer covariate (Orthodont's age steps by 2, so
#                                its phi is the square root of the per-position phi; BodyWeight's Time
#                                has gaps 7 and 1, so the two forms are different models there).
#   corCAR1(form = ~ t | g)    : phi^|t_i - t_j| for real t, phi in (0, 1) (= exp(-1/range)).
#   corCompSymm(form = ~ 1 | g): rho off the diagonal within a group.
#   corExp(form = ~ t | g, nugget = TRUE): (1 - nugget) exp(-|t_i - t_j|/range) off the diagonal.
#   varIdent(form = ~ 1 | s)   : SD of a residual in stratum s = sigma * delta_s, delta = 1 for the
#                                reference stratum, which is the stratum of the FIRST ROW of the data
#                                (unique() order of appearance, not the factor's level order; checked on
#                                a row-reversed Orthodont: the reference becomes Female). Here that is
#                                Male (orthodont), A (longsim), 1 (bodyweight); var_levels lists
#                                nlme's order, var_delta_all all deltas, sigma_by_level = sigma delta.
#   Within group the residual covariance is sigma^2 D C D, D = diag(delta_s(i)), C the correlation.
#   coef(struct, unconstrained = FALSE) gives the natural-scale values recorded as cor_natural /
#   var_natural; coef(struct) (unconstrained) gives nlme's optimisation scale (corAR1: log((1+phi)/(1-phi));
#   corCAR1: log(phi/(1-phi)); corCompSymm: log((rho + 1/(n-1))/(1 - rho)) with n the largest group size;
#   varIdent: log(delta)), recorded as cor_unconstrained / var_unconstrained.
#   logLik: REML logLik includes -(N - p)/2 log(2 pi) - 1/2 log|X'V^-1 X| (the same constant as lme4's
#   REML criterion and glmmTMB's REML = TRUE; checked in structured.json's "equivalent" entries).
# varcorr holds VarCorr() as nlme formats it (about 7 significant digits); re_cov / re_sd / re_corr are
# the full-precision random-effect covariance (getVarCov()), first_group$marginal_cov the full
# marginal covariance of the first group's rows (getVarCov(type = "marginal") / getVarCov() for gls).
# Every nlme fit is done twice: opt = "nlminb" and opt = "optim" (both with tight tolerances below); the
# record holds the nlminb fit and logLik_optim_minus_nlminb as the convergence check. apVar_ok says
# whether nlme could form the approximate covariance of the variance parameters (a string there means
# a non-positive-definite Hessian: the model is degenerate).
#
# glmmTMB dispersion (Gaussian family): the dispersion linear predictor X_d betad is log(sigma^2), the
# log VARIANCE: y_i ~ N(mu_i, exp(X_d betad)_i). So with dispformula = ~ s (treatment contrasts),
# betad[1] = log sigma_ref^2 and betad[k] = log(sigma_k^2 / sigma_ref^2) = 2 log(delta_k) in nlme's
# varIdent terms (checked in each record: sigma_by_level = exp(betad-implied eta / 2), compared with
# nlme's sigma * delta).
suppressPackageStartupMessages({library(nlme); library(glmmTMB); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_residual.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))      # fingerprint()
source(file.path(here, "bundled.R"))          # datadir, manifest, datasets, load_bundled(), fp_data()
datasets <- list()
sleepstudy <- fp_data("sleepstudy", load_bundled("sleepstudy"))
orthodont <- fp_data("orthodont", load_bundled("orthodont"))
bodyweight <- fp_data("bodyweight", load_bundled("bodyweight"))
ovary <- fp_data("ovary", load_bundled("ovary"))
longsim <- fp_data("longsim", load_bundled("longsim"))
pastes <- fp_data("pastes", load_bundled("pastes"))

NCTL <- "lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, msMaxEval = 2000, tolerance = 1e-10, msTol = 1e-12, opt = '%s')"
GCTL <- "glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-12, opt = '%s')"
TCTL <- "glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4))"
tctl <- eval(parse(text = TCTL))

num <- function(x) as.numeric(x)
# Newton polish of a glmmTMB fit (TMB gradient, optimHess Hessian), then refit from the polished start
# so that every reported number comes from glmmTMB (same procedure as make_structured.R).
polish <- function(fit, steps = 6) {
  p <- fit$fit$par; fn <- fit$obj$fn; gr <- fit$obj$gr
  f0 <- fn(p); g0 <- max(abs(gr(p)))
  for (k in seq_len(steps)) {
    g <- drop(gr(p)); if (max(abs(g)) < 1e-11) break
    step <- tryCatch(solve(optimHess(p, fn, gr), g), error = function(e) NULL)
    if (is.null(step)) break
    pn <- p - step; fnew <- fn(pn)
    if (!is.finite(fnew) || fnew > fn(p) + 1e-10 || max(abs(gr(pn))) > max(abs(g))) break
    p <- pn
  }
  if (max(abs(gr(p))) >= 0.1 * g0) { fn(fit$fit$par); return(list(fit = fit, polished = FALSE)) }
  pl <- fit$obj$env$parList(p)
  fit2 <- tryCatch(suppressWarnings(update(fit, start = pl[intersect(c("beta", "betad", "theta"), names(pl))])),
                   error = function(e) NULL)
  if (is.null(fit2) || !is.finite(fit2$fit$objective) || fit2$fit$objective > f0 + 1e-9 ||
      max(abs(fit2$obj$gr(fit2$fit$par))) >= g0) { fn(fit$fit$par); return(list(fit = fit, polished = FALSE)) }
  list(fit = fit2, polished = TRUE)
}
first_rows <- function(grp) which(as.character(grp) == as.character(grp[1]))
nlme_record <- function(id, call_fmt, data_name, identifiability = "identified", notes = NULL) {
  kind <- if (grepl("^lme\\(", call_fmt)) "lme" else "gls"
  ctl <- if (kind == "lme") NCTL else GCTL
  call <- sprintf(call_fmt, sprintf(ctl, "nlminb"))
  call_optim <- sprintf(call_fmt, sprintf(ctl, "optim"))
  warn <- character(0)
  fit <- withCallingHandlers(eval(parse(text = call)),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") })
  fit_o <- tryCatch(suppressWarnings(eval(parse(text = call_optim))), error = function(e) NULL)
  ll <- num(logLik(fit))
  reml <- fit$method == "REML"
  cs <- fit$modelStruct$corStruct; vs <- fit$modelStruct$varStruct
  rec <- list(id = id, package = "nlme", version = as.character(packageVersion("nlme")), call = call,
              data = data_name, REML = reml, method = fit$method, nobs = num(fit$dims$N),
              logLik = ll, df = attr(logLik(fit), "df"), objective = -2 * ll,
              fixef = as.list(if (kind == "lme") fixef(fit) else coef(fit)),
              fixef_se = as.list(sqrt(diag(vcov(fit)))),
              sigma = fit$sigma)
  if (!is.null(cs)) {
    rec$corStruct <- class(cs)[1]
    rec$cor_form <- deparse(formula(cs))
    rec$cor_natural <- as.list(coef(cs, unconstrained = FALSE))
    rec$cor_unconstrained <- as.list(coef(cs))
  }
  if (!is.null(vs)) {
    rec$varStruct <- class(vs)[1]
    rec$var_natural <- as.list(coef(vs, unconstrained = FALSE))
    rec$var_unconstrained <- as.list(coef(vs))
    lv <- attr(vs, "groupNames")
    dl <- setNames(rep(1, length(lv)), lv); dl[names(coef(vs, unconstrained = FALSE))] <- coef(vs, unconstrained = FALSE)
    rec$var_levels <- I(lv)
    rec$var_delta_all <- as.list(dl)
    rec$sigma_by_level <- as.list(fit$sigma * dl)
  }
  grp <- getGroups(fit)
  if (is.data.frame(grp)) grp <- grp[[ncol(grp)]]
  rows <- first_rows(grp)
  lev <- as.character(grp[1])
  if (kind == "lme") {
    vc <- VarCorr(fit)
    rec$varcorr <- list(rownames = I(rownames(vc)), variance = I(num(vc[, "Variance"])), stddev = I(num(vc[, "StdDev"])))
    D <- tryCatch(getVarCov(fit), error = function(e) NULL)
    if (!is.null(D)) {
      rec$re_cov <- matrix(as.numeric(D), nrow(D)); rec$re_names <- I(rownames(D))
      sds <- sqrt(diag(rec$re_cov)); rec$re_sd <- I(sds); rec$re_corr <- cov2cor(rec$re_cov)
    }
    V <- tryCatch(getVarCov(fit, individuals = lev, type = "marginal")[[1]], error = function(e) NULL)
    rec$fitted_head <- I(unname(head(fitted(fit), 10)))
    rec$fitted_population_head <- I(unname(head(fitted(fit, level = 0), 10)))
    rec$n_groups <- num(fit$dims$ngrps[1])
  } else {
    V <- tryCatch(getVarCov(fit, individual = lev), error = function(e) NULL)
    rec$fitted_head <- I(unname(head(fitted(fit), 10)))
  }
  rec$first_group <- list(level = lev, rows = I(rows),
                          marginal_cov = if (!is.null(V)) matrix(as.numeric(V), nrow(V)))
  rec$apVar_ok <- is.matrix(fit$apVar)
  rec$apVar_message <- if (!is.matrix(fit$apVar)) as.character(fit$apVar)
  rec$numIter <- fit$numIter
  rec$warnings <- I(warn)
  rec$logLik_optim <- if (!is.null(fit_o)) num(logLik(fit_o))
  rec$logLik_optim_minus_nlminb <- if (!is.null(fit_o)) num(logLik(fit_o)) - ll
  rec$identifiability <- identifiability
  rec$degenerate <- !rec$apVar_ok || identifiability != "identified"
  rec$converged <- is.null(fit_o) || rec$logLik_optim_minus_nlminb < 1e-6   # optim found nothing better
  rec$notes <- notes
  cat(sprintf("%-30s ll=%14.8f optim-nlminb=%9.1e apVar=%s id=%s\n", id, ll,
              if (is.null(fit_o)) NA else rec$logLik_optim_minus_nlminb, rec$apVar_ok, identifiability))
  fits[[id]] <<- rec
  invisible(fit)
}

tmb_disp_record <- function(id, call, data_name, disp_factor, nlme_id = NULL, notes = NULL) {
  warn <- character(0)
  fit <- withCallingHandlers(eval(parse(text = call)),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") })
  first <- list(objective = fit$fit$objective, message = fit$fit$message, max_abs_grad = max(abs(fit$obj$gr(fit$fit$par))))
  pol <- polish(fit); fit <- pol$fit
  ll <- -fit$fit$objective
  par <- fit$fit$par
  betad <- fixef(fit)$disp
  d <- get(data_name)
  lv <- levels(d[[disp_factor]])
  Xd1 <- model.matrix(as.formula(paste("~", disp_factor)), data.frame(setNames(list(factor(lv, levels = lv)), disp_factor)))
  eta <- drop(Xd1 %*% betad)
  vc <- VarCorr(fit)$cond
  rec <- list(id = id, package = "glmmTMB", version = as.character(packageVersion("glmmTMB")), call = call,
              control = TCTL, data = data_name, REML = isTRUE(fit$modelInfo$REML), nobs = nobs(fit),
              logLik = ll, objective = -2 * ll,
              fixef = as.list(fixef(fit)$cond), fixef_se = as.list(sqrt(diag(vcov(fit)$cond))),
              betad = as.list(betad), betad_se = as.list(sqrt(diag(vcov(fit)$disp))),
              disp_levels = I(lv),
              log_sigma2_by_level = as.list(setNames(eta, lv)),
              sigma_by_level = as.list(setNames(exp(eta / 2), lv)),
              sigma_fit = sigma(fit),
              terms = lapply(vc, function(v) list(columns = I(colnames(v)), cov = unname(as.matrix(v)),
                                                  sd = I(unname(attr(v, "stddev"))), corr = unname(attr(v, "correlation")))),
              par = list(values = I(unname(par)), names = I(names(par))),
              theta = I(unname(getME(fit, "theta"))),
              convergence = list(pdHess = fit$sdr$pdHess, code = fit$fit$convergence, message = fit$fit$message,
                                 max_abs_grad = max(abs(fit$obj$gr(par))), polished = pol$polished),
              optimizer_first = first,
              warnings = I(warn),
              fitted_head = I(unname(head(fitted(fit), 10))), notes = notes)
  if (!is.null(nlme_id)) {
    nm <- fits[[nlme_id]]
    rec$nlme_equivalent <- nlme_id
    rec$logLik_nlme <- nm$logLik
    rec$logLik_minus_nlme <- ll - nm$logLik
    rec$sigma_by_level_nlme <- nm$sigma_by_level
    rec$sigma_by_level_maxreldiff <- max(abs(unlist(rec$sigma_by_level)[lv] / unlist(nm$sigma_by_level)[lv] - 1))
  }
  rec$converged <- isTRUE(fit$sdr$pdHess) && rec$convergence$max_abs_grad < 1e-3
  cat(sprintf("%-30s ll=%14.8f grad=%.1e pdHess=%s vs nlme=%9.1e sigma reldiff=%.1e\n", id, ll,
              rec$convergence$max_abs_grad, fit$sdr$pdHess,
              if (is.null(nlme_id)) NA else rec$logLik_minus_nlme,
              if (is.null(nlme_id)) NA else rec$sigma_by_level_maxreldiff))
  fits[[id]] <<- rec
  invisible(fit)
}

fits <- list()
for (M in c("ML", "REML")) {
  s <- tolower(M)
  # ---- corAR1 by position within group ----
  nlme_record(paste0("lme_orth_ar1pos_", s),
    paste0("lme(distance ~ age + Sex, orthodont, random = ~ 1 | Subject, correlation = corAR1(form = ~ 1 | Subject), method = '", M, "', control = %s)"), "orthodont")
  nlme_record(paste0("lme_ovary_ar1pos_", s),
    paste0("lme(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), ovary, random = ~ 1 | Mare, correlation = corAR1(form = ~ 1 | Mare), method = '", M, "', control = %s)"), "ovary",
    notes = "Pinheiro & Bates (2000) section 5.3 model for Ovary")
  nlme_record(paste0("lme_bw_ar1pos_", s),
    paste0("lme(weight ~ Time * Diet, bodyweight, random = ~ 1 + Time | Rat, correlation = corAR1(form = ~ 1 | Rat), method = '", M, "', control = %s)"), "bodyweight")
  # ---- corAR1 with integer times ----
  nlme_record(paste0("lme_orth_ar1age_", s),
    paste0("lme(distance ~ age + Sex, orthodont, random = ~ 1 | Subject, correlation = corAR1(0.5, form = ~ age | Subject), method = '", M, "', control = %s)"), "orthodont",
    notes = "ages 8, 10, 12, 14: phi^(|age_i - age_j|), the same model as lme_orth_ar1pos when phi_pos >= 0 (phi_age^2 = phi_pos). Initial value 0.5 given: see lme_orth_ar1age_default_start_ml")
  nlme_record(paste0("lme_bw_ar1time_", s),
    paste0("lme(weight ~ Time * Diet, bodyweight, random = ~ 1 + Time | Rat, correlation = corAR1(form = ~ Time | Rat), method = '", M, "', control = %s)"), "bodyweight",
    notes = "integer days 1, 8, ..., 43, 44, ..., 64: lags of 7 and 1 days; the same model as corCAR1(form = ~ Time | Rat)")
  nlme_record(paste0("lme_ss_ar1days_", s),
    paste0("lme(Reaction ~ Days, sleepstudy, random = ~ 1 | Subject, correlation = corAR1(form = ~ Days | Subject), method = '", M, "', control = %s)"), "sleepstudy")
  # ---- corCAR1 ----
  nlme_record(paste0("lme_ls_car1_", s),
    paste0("lme(y ~ t + group, longsim, random = ~ 1 + t | id, correlation = corCAR1(form = ~ t | id), method = '", M, "', control = %s)"), "longsim")
  nlme_record(paste0("lme_bw_car1_", s),
    paste0("lme(weight ~ Time * Diet, bodyweight, random = ~ 1 + Time | Rat, correlation = corCAR1(form = ~ Time | Rat), method = '", M, "', control = %s)"), "bodyweight")
  # ---- corCompSymm ----
  nlme_record(paste0("lme_pastes_cs_", s),
    paste0("lme(strength ~ 1, pastes, random = ~ 1 | batch, correlation = corCompSymm(form = ~ 1 | batch/cask), method = '", M, "', control = %s)"), "pastes",
    notes = "compound symmetry within batch:cask below a batch intercept: equals lme4's (1 | batch) + (1 | batch:cask) when rho >= 0")
  nlme_record(paste0("lme_orth_ri_cs_", s),
    paste0("lme(distance ~ age + Sex, orthodont, random = ~ 1 | Subject, correlation = corCompSymm(form = ~ 1 | Subject), method = '", M, "', control = %s)"), "orthodont",
    identifiability = "none",
    notes = "random intercept + compound symmetry in the same groups: only sd_b^2 + sigma^2 rho and sigma^2 (1 - rho) are identified (a ridge); kept as a degenerate example")
  # ---- varIdent ----
  nlme_record(paste0("lme_orth_varident_", s),
    paste0("lme(distance ~ age + Sex, orthodont, random = ~ 1 | Subject, weights = varIdent(form = ~ 1 | Sex), method = '", M, "', control = %s)"), "orthodont",
    notes = "Pinheiro & Bates (2000) section 5.2 (fm3Orth.lme-like)")
  nlme_record(paste0("lme_ls_varident_", s),
    paste0("lme(y ~ t + group, longsim, random = ~ 1 + t | id, weights = varIdent(form = ~ 1 | group), method = '", M, "', control = %s)"), "longsim")
  nlme_record(paste0("lme_bw_varident_", s),
    paste0("lme(weight ~ Time * Diet, bodyweight, random = ~ 1 + Time | Rat, weights = varIdent(form = ~ 1 | Diet), method = '", M, "', control = %s)"), "bodyweight")
  # ---- correlation + varIdent ----
  nlme_record(paste0("lme_ls_car1_varident_", s),
    paste0("lme(y ~ t + group, longsim, random = ~ 1 + t | id, correlation = corCAR1(form = ~ t | id), weights = varIdent(form = ~ 1 | group), method = '", M, "', control = %s)"), "longsim",
    notes = "the simulation model (true values: sd(b0) 2, sd(b1) 0.3, cor 0.3, phi = exp(-1/1.5) = 0.5134, sigma_A 1, delta_B 1.5)")
  nlme_record(paste0("lme_orth_ar1_varident_", s),
    paste0("lme(distance ~ age + Sex, orthodont, random = ~ 1 | Subject, correlation = corAR1(form = ~ 1 | Subject), weights = varIdent(form = ~ 1 | Sex), method = '", M, "', control = %s)"), "orthodont")
  nlme_record(paste0("lme_bw_car1_varident_", s),
    paste0("lme(weight ~ Time * Diet, bodyweight, random = ~ 1 + Time | Rat, correlation = corCAR1(form = ~ Time | Rat), weights = varIdent(form = ~ 1 | Diet), method = '", M, "', control = %s)"), "bodyweight")
  # ---- gls: the same residual models without random effects ----
  nlme_record(paste0("gls_orth_ar1pos_", s),
    paste0("gls(distance ~ age + Sex, orthodont, correlation = corAR1(form = ~ 1 | Subject), method = '", M, "', control = %s)"), "orthodont")
  nlme_record(paste0("gls_ovary_ar1pos_", s),
    paste0("gls(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time), ovary, correlation = corAR1(form = ~ 1 | Mare), method = '", M, "', control = %s)"), "ovary")
  nlme_record(paste0("gls_orth_ar1age_", s),
    paste0("gls(distance ~ age + Sex, orthodont, correlation = corAR1(0.5, form = ~ age | Subject), method = '", M, "', control = %s)"), "orthodont",
    notes = "phi_age^2 = phi of gls_orth_ar1pos. Initial value 0.5 given: see gls_orth_ar1age_default_start_ml")
  nlme_record(paste0("gls_ss_ar1days_", s),
    paste0("gls(Reaction ~ Days, sleepstudy, correlation = corAR1(form = ~ Days | Subject), method = '", M, "', control = %s)"), "sleepstudy")
  nlme_record(paste0("gls_ls_car1_", s),
    paste0("gls(y ~ t + group, longsim, correlation = corCAR1(form = ~ t | id), method = '", M, "', control = %s)"), "longsim")
  nlme_record(paste0("gls_bw_car1_", s),
    paste0("gls(weight ~ Time * Diet, bodyweight, correlation = corCAR1(form = ~ Time | Rat), method = '", M, "', control = %s)"), "bodyweight")
  nlme_record(paste0("gls_orth_cs_", s),
    paste0("gls(distance ~ age + Sex, orthodont, correlation = corCompSymm(form = ~ 1 | Subject), method = '", M, "', control = %s)"), "orthodont")
  nlme_record(paste0("gls_ss_cs_", s),
    paste0("gls(Reaction ~ Days, sleepstudy, correlation = corCompSymm(form = ~ 1 | Subject), method = '", M, "', control = %s)"), "sleepstudy")
  nlme_record(paste0("gls_bw_cs_", s),
    paste0("gls(weight ~ Time * Diet, bodyweight, correlation = corCompSymm(form = ~ 1 | Rat), method = '", M, "', control = %s)"), "bodyweight")
  nlme_record(paste0("gls_orth_varident_", s),
    paste0("gls(distance ~ age + Sex, orthodont, weights = varIdent(form = ~ 1 | Sex), method = '", M, "', control = %s)"), "orthodont")
  nlme_record(paste0("gls_ls_varident_", s),
    paste0("gls(y ~ t + group, longsim, weights = varIdent(form = ~ 1 | group), method = '", M, "', control = %s)"), "longsim")
  nlme_record(paste0("gls_bw_varident_", s),
    paste0("gls(weight ~ Time * Diet, bodyweight, weights = varIdent(form = ~ 1 | Diet), method = '", M, "', control = %s)"), "bodyweight")
  nlme_record(paste0("gls_ls_car1_varident_", s),
    paste0("gls(y ~ t + group, longsim, correlation = corCAR1(form = ~ t | id), weights = varIdent(form = ~ 1 | group), method = '", M, "', control = %s)"), "longsim")
  nlme_record(paste0("gls_orth_ar1_varident_", s),
    paste0("gls(distance ~ age + Sex, orthodont, correlation = corAR1(form = ~ 1 | Subject), weights = varIdent(form = ~ 1 | Sex), method = '", M, "', control = %s)"), "orthodont")
  nlme_record(paste0("gls_orth_cs_varident_", s),
    paste0("gls(distance ~ age + Sex, orthodont, correlation = corCompSymm(form = ~ 1 | Subject), weights = varIdent(form = ~ 1 | Sex), method = '", M, "', control = %s)"), "orthodont")
  # ---- glmmTMB dispersion models = lme + varIdent ----
  R <- if (M == "REML") "TRUE" else "FALSE"
  tmb_disp_record(paste0("tmb_orth_disp_", s),
    sprintf("glmmTMB(distance ~ age + Sex + (1 | Subject), dispformula = ~ Sex, data = orthodont, REML = %s, control = tctl)", R),
    "orthodont", "Sex", nlme_id = paste0("lme_orth_varident_", s))
  tmb_disp_record(paste0("tmb_ls_disp_", s),
    sprintf("glmmTMB(y ~ t + group + (1 + t | id), dispformula = ~ group, data = longsim, REML = %s, control = tctl)", R),
    "longsim", "group", nlme_id = paste0("lme_ls_varident_", s))
  tmb_disp_record(paste0("tmb_bw_disp_", s),
    sprintf("glmmTMB(weight ~ Time * Diet + (1 + Time | Rat), dispformula = ~ Diet, data = bodyweight, REML = %s, control = tctl)", R),
    "bodyweight", "Diet", nlme_id = paste0("lme_bw_varident_", s))
}

# nlme quirk kept for the record: with non-consecutive integer times (ages 8, 10, 12, 14) nlme turns
# corAR1(form = ~ age | g) into corARMA(p = 1) and starts it at phi = 0, where every lag is even, so
# the likelihood is flat to first order in phi: the optimiser never moves and returns phi = 0.
nlme_record("gls_orth_ar1age_default_start_ml",
  "gls(distance ~ age + Sex, orthodont, correlation = corAR1(form = ~ age | Subject), method = 'ML', control = %s)", "orthodont",
  identifiability = "stuck", notes = "nlme stops at its start phi = 0 (a stationary point; ages step by 2 so all lags are even); compare gls_orth_ar1age_ml")
nlme_record("lme_orth_ar1age_default_start_ml",
  "lme(distance ~ age + Sex, orthodont, random = ~ 1 | Subject, correlation = corAR1(form = ~ age | Subject), method = 'ML', control = %s)", "orthodont",
  identifiability = "stuck", notes = "as gls_orth_ar1age_default_start_ml")

writeLines(toJSON(list(
  description = "nlme lme/gls fits with residual correlation and variance models, and glmmTMB Gaussian dispersion-model fits (mixedfx issue 10); conventions in make_residual.R",
  nlme_version = as.character(packageVersion("nlme")), glmmTMB_version = as.character(packageVersion("glmmTMB")),
  R = R.version.string, nlme_control = NCTL, gls_control = GCTL, glmmTMB_control = TCTL,
  glmmTMB_gaussian_dispersion = "betad is on the log-variance scale: sigma_i^2 = exp((X_d betad)_i); sigma(fit) = exp(betad/2) for dispformula ~1",
  datasets = datasets, fits = unname(fits)),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "with", length(fits), "fits\n")
