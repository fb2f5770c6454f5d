# Profile-likelihood 95% confidence intervals for the variance parameters of glmmTMB 1.1.5 fits with
# structured random-effect covariances (mixedfx issue 10, follow-up to make_structured.R and
# make_structured_rep.R), reported on NATURAL scales.
# Usage (from the repository root):
#   Rscript tests/reference/make_structured_profile.R tests/reference/structured_profile.json
# Data: the bundled copies src/mixedfx/datasets/data/*.csv.gz, read exactly as make_structured*.R do.
# Models (ML only; the fits are the same calls, control and Newton polish + refit as the records with
# these ids in structured.json / structured_rep.json; "logLik_minus_reference_json" compares):
#   ss_ri_ar1_ml  Reaction ~ Days + (1 | Subject) + ar1(0 + factor(Days) | Subject)   (start as there)
#   mach_ar1_ml   score ~ Machine + ar1(0 + Machine | Worker)
#   mach_cs_ml    score ~ Machine + cs(0 + Machine | Worker)
#   pst_ar1_ml    strength ~ 1 + ar1(0 + cask | batch)
#   rm_ou_ml      y ~ t + arm + ou(0 + numFactor(t) | id)
#
# Procedure, per variance parameter (every theta entry and the dispersion betad; the fixed effects
# are not profiled):
#  1. glmmTMB's profile CI: confint(fit, method = "profile", parm = <index>, level = 0.95), i.e.
#     profile() (TMB::tmbprofile over a grid, level_max = 0.95) and a spline back-interpolation of the
#     deviance at qchisq(0.95, 1) / 2 (on the internal scale).
#     Also recorded for comparison: glmmTMB's confint(method = "uniroot") (TMB::tmbroot).
#  2. Independent check of each endpoint: the model is refitted by glmmTMB with that parameter FIXED at
#     the endpoint (map = list(theta = factor(c(.., NA, ..))) or map = list(betad = factor(NA)), start
#     = the MLE with the fixed entry replaced), all other parameters re-optimised (same nlminb
#     control), and check = 2 (logLik_max - logLik_fixed) is recorded; it should be qchisq(0.95, 1)
#     = 3.841459.
#  3. If glmmTMB's endpoint is missing / non-finite or its check misses 3.841459 by more than 1e-3, the
#     endpoint is recomputed by uniroot() on 2 (logLik_max - logLik_fixed(x)) - qchisq(0.95, 1), with
#     the constrained refit of step 2 as the function (tol 1e-10 on the internal scale, bracket from
#     the MLE outwards in steps of the Wald SE); method = "uniroot_refit", flagged. If the deviance
#     stays below the target all the way to the edge of the parameter space (correlation -> +-1, SD ->
#     0), the endpoint is that bound (method = "bound", flagged; check = deviance at the last point).
#     Otherwise method = "glmmTMB_profile".
#  4. The uniroot_refit root of step 3 is computed for EVERY endpoint anyway and recorded as
#     "uniroot_refit_internal" (with its check) and, per natural parameter, "lower_exact" /
#     "upper_exact": glmmTMB's spline interpolation puts its endpoints up to ~1e-4 (internal scale)
#     from the exact root even when the check passes, so a tight comparison should use the exact ones.
#     The constrained refits are Newton-polished (TMB gradient, optimHess) after nlminb, so the
#     checks of the exact roots are 3.841459 to ~1e-8. For a "bound" endpoint the deviance scan
#     towards the bound is recorded ("scan").
# Natural scales (profile endpoints are invariant to monotone reparameterisation; see the notes at the
# top of make_structured.R for glmmTMB's parameterisation): SD = exp(theta); ar1 rho = c / sqrt(1 + c^2);
# cs rho = (n plogis(c) - 1) / (n - 1); ou: kappa = exp(c) and the per-unit-time correlation
# exp(-kappa) (DEcreasing in c, so its lower endpoint comes from c's upper one); residual sigma =
# exp(betad / 2) (betad = log sigma^2 for the Gaussian family).
# Deterministic (no random numbers); re-runs itself with address-space randomisation off as
# make_structured_rep.R does.
suppressPackageStartupMessages({library(glmmTMB); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_structured_profile.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
if (!nzchar(Sys.getenv("MIXEDFX_REF_ASLR_OFF")) && nzchar(Sys.which("setarch"))) {
  arch <- system2("uname", "-m", stdout = TRUE)
  if (identical(suppressWarnings(system2("setarch", c(arch, "-R", "true"), stdout = FALSE, stderr = FALSE)), 0L)) {
    st <- system2("setarch", c(arch, "-R", shQuote(file.path(R.home("bin"), "Rscript")), shQuote(normalizePath(script)),
                               shQuote(out)), env = "MIXEDFX_REF_ASLR_OFF=1")
    quit(save = "no", status = st)
  }
}
source(file.path(here, "fingerprint.R"))      # fingerprint()
source(file.path(here, "bundled.R"))          # datadir, manifest, datasets, load_bundled(), fp_data()
datasets <- list()
sleepstudy <- fp_data("sleepstudy", load_bundled("sleepstudy"))
pastes <- fp_data("pastes", load_bundled("pastes"))
machines <- fp_data("machines", load_bundled("machines"))
repmeas <- fp_data("repmeas", load_bundled("repmeas"))
ctl <- glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4))
CONTROL_TEXT <- "glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4))  (nlminb, default rel.tol = 1e-10), then the Newton polish + refit from the polished start of make_structured.R"
ref_ll <- list()
for (f in c("structured.json", "structured_rep.json")) {
  js <- fromJSON(file.path(here, f), simplifyVector = FALSE)
  for (r in js$fits) ref_ll[[r$id]] <- r$logLik
}

# ---- polish(): copied from make_structured.R ---------------------------------------------------------
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
  start <- pl[intersect(c("beta", "betad", "theta"), names(pl))]
  fit2 <- tryCatch(suppressWarnings(update(fit, start = start)), error = function(e) NULL)
  if (is.null(fit2)) { fn(fit$fit$par); return(list(fit = fit, polished = FALSE)) }
  if (!is.finite(fit2$fit$objective) || fit2$fit$objective > f0 + 1e-9 ||
      max(abs(fit2$obj$gr(fit2$fit$par))) >= g0) { fn(fit$fit$par); return(list(fit = fit, polished = FALSE)) }
  list(fit = fit2, polished = TRUE)
}

QCHI <- qchisq(0.95, 1)
TOL_CHECK <- 1e-3

# Variance parameters of a fit: index into fit$fit$par, glmmTMB's name, natural name(s) and transforms.
var_params <- function(fit) {
  par <- fit$fit$par; gnames <- rownames(vcov(fit, full = TRUE))
  stopifnot(length(gnames) == length(par))
  reS <- fit$modelInfo$reStruc$condReStruc; vc <- VarCorr(fit)$cond
  ti <- which(names(par) == "theta"); k <- 0; res <- list()
  add <- function(i, natural, tr, kind) res[[length(res) + 1]] <<- list(index = i, glmmTMB_name = gnames[i],
                                                                       natural = natural, tr = tr, kind = kind)
  for (j in seq_along(reS)) {
    struc <- names(glmmTMB:::.valid_covstruct)[match(reS[[j]]$blockCode, glmmTMB:::.valid_covstruct)]
    g <- trimws(sub("^.*\\|", "", sub("\\)$", "", names(reS)[j])))   # grouping factor (VarCorr says "Subject.1")
    cols <- colnames(vc[[j]]); n <- length(cols)
    if (struc %in% c("us", "diag") && n == 1) {
      k <- k + 1; add(ti[k], list(paste0("sd_", cols, "|", g)), list(exp), "log_sd")
    } else if (struc == "ar1") {
      k <- k + 1; add(ti[k], list(paste0("sd|", g, ".ar1")), list(exp), "log_sd")
      k <- k + 1; add(ti[k], list(paste0("rho|", g)), list(function(x) if (is.infinite(x)) sign(x) else x / sqrt(1 + x^2)), "ar1_cor")
    } else if (struc == "ou") {
      k <- k + 1; add(ti[k], list(paste0("sd|", g, ".ou")), list(exp), "log_sd")
      k <- k + 1; add(ti[k], list(paste0("corr_per_unit_time|", g), paste0("kappa|", g)),
                      list(function(x) exp(-exp(x)), exp), "ou_log_kappa")
    } else if (struc == "cs") {
      for (cc in cols) { k <- k + 1; add(ti[k], list(paste0("sd_", cc, "|", g)), list(exp), "log_sd") }
      k <- k + 1
      add(ti[k], list(paste0("rho|", g)), list(local({ nn <- n; function(x) (nn * plogis(x) - 1) / (nn - 1) })), "cs_cor")
    } else stop("structure not handled: ", struc)
  }
  stopifnot(k == length(ti))
  for (i in which(names(par) == "betad")) add(i, list("sigma"), list(function(x) exp(x / 2)), "log_sigma2")
  res
}

# Constrained refit: parameter i of fit$fit$par fixed at x, all others re-optimised by glmmTMB.
fixed_refit <- function(fit, i, x) {
  par <- fit$fit$par; nm <- names(par)[i]
  pos <- i - min(which(names(par) == nm)) + 1          # position within its block (theta / betad)
  pl <- fit$obj$env$parList(par)
  start <- pl[intersect(c("beta", "betad", "theta"), names(pl))]
  start[[nm]][pos] <- x
  m <- seq_along(start[[nm]]); m[pos] <- NA
  map <- setNames(list(factor(m)), nm)
  f <- tryCatch(suppressWarnings(update(fit, map = map, start = start)), error = function(e) e)
  if (inherits(f, "error") || !is.finite(f$fit$objective)) return(list(logLik = NA_real_, grad = NA_real_, code = NA))
  # Newton polish of the constrained optimum (TMB gradient, optimHess Hessian), as polish() does
  fn <- f$obj$fn; gr <- f$obj$gr; p <- f$fit$par
  for (k in 1:6) {
    g <- drop(gr(p)); if (max(abs(g)) < 1e-11) break
    H <- tryCatch(optimHess(p, fn, gr), error = function(e) NULL); if (is.null(H)) break
    st <- tryCatch(solve(H, g), error = function(e) NULL); if (is.null(st)) break
    pn <- p - st; fp <- fn(p); fnew <- fn(pn)
    if (!is.finite(fnew) || fnew > fp + 1e-12 || max(abs(gr(pn))) > max(abs(g))) break
    p <- pn
  }
  obj <- min(fn(p), f$fit$objective)
  list(logLik = -obj, grad = max(abs(gr(p))), code = f$fit$convergence)
}

# Root of 2 (llmax - ll_fixed(x)) - QCHI on one side of the MLE (dir = -1 lower, +1 upper).
# The outward scan stops at |internal| > lim. For the dispersion lim = 16 (sigma^2 < 1.1e-7): further
# out TMB's inner Hessian (entries ~1/sigma^2) loses digits and its logLik becomes unreliable
# (ss_ri_ar1_ml: the deviance plateau of 2.0170 for sigma -> 0 drops to a spurious 1.06 at
# log sigma^2 = -24.6).
root_side <- function(fit, i, dir, se, llmax, hint = NA, lim = 40) {
  x0 <- fit$fit$par[i]
  dev <- function(x) 2 * (llmax - fixed_refit(fit, i, x)$logLik)
  step <- if (is.finite(se) && se > 0) se else 0.5
  a <- x0; b <- NA
  if (is.finite(hint) && sign(hint - x0) == dir) {        # try glmmTMB's endpoint to bracket quickly
    dh <- dev(hint)
    if (is.finite(dh) && dh < QCHI) a <- hint
    if (is.finite(dh) && dh > QCHI) b <- hint
  }
  last <- c(a, NA); path <- matrix(numeric(0), 0, 2)
  if (is.na(b)) {
    x <- a
    for (s in 1:60) {
      x <- x + dir * step * 2^(s %/% 4)
      dx <- dev(x)
      if (!is.finite(dx)) break
      last <- c(x, dx); path <- rbind(path, last)
      if (dx > QCHI) { b <- x; break }
      a <- x
      if (abs(x) > lim) break
    }
  }
  if (is.na(b)) return(list(x = NA_real_, bound = TRUE, last = last, path = unname(path)))
  r <- uniroot(function(x) dev(x) - QCHI, sort(c(a, b)), tol = 1e-10)
  list(x = r$root, bound = FALSE, iter = r$iter)
}

profile_record <- function(id, call, data_name) {
  fit <- suppressWarnings(eval(parse(text = call)))
  pol <- polish(fit); fit <- pol$fit
  llmax <- -fit$fit$objective; par <- fit$fit$par
  gmax <- max(abs(fit$obj$gr(par)))
  se_all <- sqrt(diag(vcov(fit, full = TRUE)))
  vp <- var_params(fit)
  t0 <- proc.time()[[3]]
  params <- lapply(vp, function(v) {
    i <- v$index
    ci_prof <- tryCatch(suppressWarnings(confint(fit, method = "profile", parm = i, level = 0.95, estimate = FALSE)),
                        error = function(e) matrix(NA_real_, 1, 2))
    fit$obj$fn(par)
    ci_root <- tryCatch(suppressWarnings(confint(fit, method = "uniroot", parm = i, level = 0.95, estimate = FALSE)),
                        error = function(e) matrix(NA_real_, 1, 2))
    fit$obj$fn(par)
    prof <- unname(as.numeric(ci_prof[1, 1:2])); tmbr <- unname(as.numeric(ci_root[1, 1:2]))
    ends <- lapply(1:2, function(side) {
      dir <- c(-1, 1)[side]; x <- prof[side]
      chk <- if (is.finite(x)) fixed_refit(fit, i, x) else list(logLik = NA_real_)
      dev <- 2 * (llmax - chk$logLik)
      rs <- root_side(fit, i, dir, se_all[i], llmax, hint = x, lim = if (v$kind == "log_sigma2") 16 else 40)      # the exact root, always computed
      if (rs$bound) {
        ex <- dir * Inf
        ex_chk <- rs$last[2]
      } else {
        chk2 <- fixed_refit(fit, i, rs$x); ex <- rs$x; ex_chk <- 2 * (llmax - chk2$logLik)
      }
      e <- list(glmmTMB_profile_internal = x, glmmTMB_profile_check = dev,
                uniroot_refit_internal = ex, uniroot_refit_check = ex_chk,
                uniroot_refit_refit_grad = if (!rs$bound) chk2$grad)
      if (rs$bound) e$scan <- list(internal = I(rs$path[, 1]), deviance = I(rs$path[, 2]))
      if (is.finite(dev) && abs(dev - QCHI) <= TOL_CHECK)
        return(c(list(internal = x, method = "glmmTMB_profile", flagged = FALSE, check = dev), e))
      if (rs$bound)
        return(c(list(internal = ex, method = "bound", flagged = TRUE, check = ex_chk, check_at_internal = rs$last[1]), e))
      c(list(internal = ex, method = "uniroot_refit", flagged = TRUE, check = ex_chk), e)
    })
    fit$obj$fn(par)
    nat <- lapply(seq_along(v$natural), function(q) {
      tr <- v$tr[[q]]; vals <- c(tr(ends[[1]]$internal), tr(ends[[2]]$internal))
      exv <- sort(c(tr(ends[[1]]$uniroot_refit_internal), tr(ends[[2]]$uniroot_refit_internal)))
      list(name = v$natural[[q]], mle = tr(par[i]), lower = min(vals), upper = max(vals),
           lower_exact = exv[1], upper_exact = exv[2],
           decreasing_in_internal = tr(par[i] + 1e-3) < tr(par[i]))
    })
    cat(sprintf("  %-34s %s  [%s]\n", v$glmmTMB_name,
                paste(vapply(nat, function(z) sprintf("%s=%.6g (%.6g, %.6g)", z$name, z$mle, z$lower, z$upper), ""), collapse = "; "),
                paste(vapply(ends, function(e) sprintf("%s %.6f ex %.7f d=%.1e", e$method, e$check, e$uniroot_refit_check, e$internal - e$uniroot_refit_internal), ""), collapse = " / ")))
    list(glmmTMB_name = v$glmmTMB_name, internal_kind = v$kind, mle_internal = unname(par[i]),
         wald_se_internal = unname(se_all[i]),
         ci_internal = list(lower = ends[[1]]$internal, upper = ends[[2]]$internal),
         natural = nat,
         lower_end = ends[[1]], upper_end = ends[[2]],
         glmmTMB_uniroot_internal = I(tmbr),
         methods = I(c(ends[[1]]$method, ends[[2]]$method)),
         flagged = ends[[1]]$flagged || ends[[2]]$flagged)
  })
  cat(sprintf("%-14s ll=%.8f (ref diff %.1e) grad=%.0e polished=%s  %.0fs\n", id, llmax,
              llmax - ref_ll[[id]], gmax, pol$polished, proc.time()[[3]] - t0))
  list(id = id, call = call, data = data_name, REML = FALSE, logLik = llmax,
       logLik_reference_json = ref_ll[[id]], logLik_minus_reference_json = llmax - ref_ll[[id]],
       max_abs_grad = gmax, polished = pol$polished, pdHess = fit$sdr$pdHess,
       par_names = I(names(par)), par = I(unname(par)),
       params = params)
}

models <- list(
  list("ss_ri_ar1_ml", "glmmTMB(Reaction ~ Days + (1 | Subject) + ar1(0 + factor(Days) | Subject), data = sleepstudy, REML = FALSE, control = ctl, start = list(beta = c(253.5, 10.45), theta = c(3.17, 3.68, 1.43), betad = 5.31))", "sleepstudy"),
  list("mach_ar1_ml", "glmmTMB(score ~ Machine + ar1(0 + Machine | Worker), data = machines, REML = FALSE, control = ctl)", "machines"),
  list("mach_cs_ml", "glmmTMB(score ~ Machine + cs(0 + Machine | Worker), data = machines, REML = FALSE, control = ctl)", "machines"),
  list("pst_ar1_ml", "glmmTMB(strength ~ 1 + ar1(0 + cask | batch), data = pastes, REML = FALSE, control = ctl)", "pastes"),
  list("rm_ou_ml", "glmmTMB(y ~ t + arm + ou(0 + numFactor(t) | id), data = repmeas, REML = FALSE, control = ctl)", "repmeas"))
recs <- lapply(models, function(m) { cat(m[[1]], "\n"); profile_record(m[[1]], m[[2]], m[[3]]) })

writeLines(toJSON(list(
  description = "Profile-likelihood 95% CIs (natural scales) for the variance parameters of glmmTMB ML fits with structured random-effect covariances; see make_structured_profile.R for the procedure, checks and flags",
  glmmTMB_version = as.character(packageVersion("glmmTMB")), TMB_version = as.character(packageVersion("TMB")),
  R = R.version.string, control = CONTROL_TEXT, level = 0.95, qchisq_target = QCHI, check_tolerance = TOL_CHECK,
  datasets = datasets, fits = recs),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "\n")
