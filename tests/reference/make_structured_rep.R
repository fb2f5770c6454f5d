# glmmTMB reference fits with structured random-effect covariances AND a residual variance (mixedfx
# issue 10, follow-up to make_structured.R).
# Usage (from the repository root): Rscript tests/reference/make_structured_rep.R tests/reference/structured_rep.json
# Data: the bundled copies src/mixedfx/datasets/data/{pastes,machines,repmeas,cbpp}.csv.gz (factor
# levels from datasets.json; machines and repmeas are written by the last section of
# make_structured_data.R), so R and Python fit the same numbers; "datasets" in the JSON holds their
# fingerprints (fingerprint.R). Single-threaded reference BLAS; no random numbers; byte-identical output
# from run to run when address-space randomisation is off, which the script arranges itself (below).
#
# Why this file: most cs/ar1/toep/homcs/ou records of structured.json use dispformula = ~0, because
# with ONE observation per (group, time) a structured term over 0 + factor(time) and the residual
# variance are (nearly) redundant. Here every dataset has REPLICATES within each (group, column) cell,
# so the residual variance is identified by the within-cell spread and every structure is fitted
# with the default dispformula (~1, a residual variance):
#   pastes   strength ~ 1 + S(0 + cask | batch)          10 batches x 3 casks x 2 samples
#   machines score ~ Machine + S(0 + Machine | Worker)   6 workers x 3 machines x 3 replicates
#   repmeas  y ~ t + arm + S(0 + factor(visit) | id)     80 subjects x 5 visits x 2 replicates
#            (simulated: subject-by-visit effects follow a continuous-time AR(1) over t, residual SD 1)
#   cbpp     binomial GLMM, period x herd (no residual; Laplace approximation)
# S in us, diag, cs, ar1, toep, ou, and homcs / homdiag emulated with `map` (not in glmmTMB 1.1.5).
#
# Parameterisations (theta slice of each term, residual = log variance, REML handling): exactly as
# documented at the top of make_structured.R; every record's "param_check_maxdiff" again compares the
# covariance rebuilt from theta with glmmTMB's VarCorr(). Note for ar1 / toep: the lag is the column
# POSITION (Machine A, B, C; visit 1..5 although the visit times 0, 1, 2.5, 4, 7 are unequally
# spaced); ou uses the numFactor(t) times.
#
# Procedure and record format: the helpers below are copied from make_structured.R (same nlminb
# control, Newton polish + refit from the polished start, dense exact (RE)ML log-likelihood at the
# estimates, same fields and flags). Additions:
#  * "restarts": after the polish each fit is refitted from 2 deterministic perturbed starts
#    (theta of the optimum + (+0.5, -0.5, +0.5, ...) and + (-0.5, +0.5, ...) on the free theta
#    entries, beta / betad kept; halved until the start is admissible, as a toep start whose lag
#    correlations are not positive definite is not) and each restart's logLik, gradient and pdHess are recorded. If a
#    restart reaches a logLik more than 1e-6 above the record's, the record is flagged local_optimum
#    (hence degenerate, not reliable) and "restart_best_minus_logLik" says by how much.
#  * equivalents: lme4 (lmer / glmer) where an exact equivalent exists: us(0 + f | g) = (0 + f | g);
#    diag(0 + f | g) = one (0 + dummy(f, level) | g) term per level (lme4's || does not split a
#    factor); homdiag(0 + f | g) = (1 | g:f); homcs(0 + f | g) = (1 | g) + (1 | g:f) when the common
#    correlation rho >= 0 (var(g) = sd^2 rho, var(g:f) = sd^2 (1 - rho)); with (1 | g) added,
#    (1 | g) + homdiag = (1 | g) + (1 | g:f). logLik compared at each package's own optimum.
#  * non-Gaussian fits (cbpp): the logLik is glmmTMB's Laplace approximation; instead of the exact
#    Gaussian check (logLik_exact_* = null) the Laplace approximation is recomputed densely outside TMB
#    at the estimates (logLik_laplace_dense_*, laplace_dense() below) and precision_limited compares
#    that; sigma = null; the boundary threshold for an SD is 1e-3 on the link scale; first_group's
#    marginal_cov is the link-scale Z G Z' (no residual), as is the glmer equivalent's.
# Identifiability here: "identified" for every structure (replicates), except where a term is
# redundant with another (documented per record).
# Flags as in make_structured.R: converged = pdHess && |gradient| < 1e-3; boundary = an SD < 1e-3 sd(y)
# (residual SD included) or |cor| > 0.999; precision_limited = |logLik_exact_at_estimates - logLik| >
# 1e-6; degenerate = !pdHess || boundary || not identified || local_optimum; reliable = converged &&
# !precision_limited && !degenerate.
suppressPackageStartupMessages({library(glmmTMB); library(lme4); library(nlme); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_structured_rep.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
# Bitwise reproducibility: the REML fits on repmeas (beta integrated out inside TMB) change in the last
# digits (estimates ~1e-11 relative, logLik ~1e-14, gradient / restart diagnostics more) with the
# memory addresses R happens to get, i.e. from run to run under address-space layout randomisation.
# So the script re-runs itself with ASLR off (util-linux setarch -R) when that is possible; with
# MIXEDFX_REF_ASLR_OFF set (or without setarch) it runs as is. Repeated runs in the same environment
# are then byte-identical; a different environment (other variables, so other addresses) can still
# change those REML records in the last digits quoted above.
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
pastes <- fp_data("pastes", load_bundled("pastes"))
machines <- fp_data("machines", load_bundled("machines"))
repmeas <- fp_data("repmeas", load_bundled("repmeas"))
cbpp <- fp_data("cbpp", load_bundled("cbpp"))
ctl <- glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4))
CONTROL_TEXT <- "glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4))  (nlminb, default rel.tol = 1e-10), then the Newton polish + refit from the polished start described at the top of make_structured.R, then 2 perturbed restarts (make_structured_rep.R)"

# ---- helpers ---------------------------------------------------------------------------------------
cov_from_theta <- function(struc, th, n, times = NULL) {
  rmat <- diag(n)
  if (struc == "diag") sd <- exp(th)
  else if (struc == "us") {
    sd <- exp(th[1:n])
    L <- diag(n); k <- n
    for (i in seq_len(n)) for (j in seq_len(n)) if (i > j) { k <- k + 1; L[i, j] <- th[k] }
    rmat <- cov2cor(L %*% t(L))
  } else if (struc == "cs") {
    sd <- exp(th[1:n]); a <- 1 / (n - 1); rho <- plogis(th[n + 1]) * (1 + a) - a
    rmat[] <- rho; diag(rmat) <- 1
  } else if (struc == "ar1") {
    sd <- rep(exp(th[1]), n); phi <- th[2] / sqrt(1 + th[2]^2)
    rmat <- phi^abs(outer(1:n, 1:n, "-"))
  } else if (struc == "toep") {
    sd <- exp(th[1:n]); rho <- th[(n + 1):(2 * n - 1)] / sqrt(1 + th[(n + 1):(2 * n - 1)]^2)
    lag <- abs(outer(1:n, 1:n, "-")); rmat <- matrix(c(1, rho)[lag + 1], n)
  } else if (struc == "ou") {
    sd <- rep(exp(th[1]), n); rmat <- exp(-exp(th[2]) * abs(outer(times, times, "-")))
  } else stop("no formula for ", struc)
  diag(sd, n) %*% rmat %*% diag(sd, n)
}

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

# Marginal covariance V = Z G Z' + diag(residual variances) built from the reported estimates, and
# the exact Gaussian log-likelihood there (ML, or REML with lme4's constant: (N - p) log(2 pi)),
# computed densely outside TMB.
tmb_marginal <- function(fit, covs) {
  Z <- getME(fit, "Z"); N <- nrow(Z)
  reS <- fit$modelInfo$reStruc$condReStruc
  V <- matrix(0, N, N); off <- 0
  for (i in seq_along(reS)) {
    n <- reS[[i]]$blockSize
    for (j in seq_len(reS[[i]]$blockReps)) {
      cols <- off + (j - 1) * n + seq_len(n)
      zc <- Z[, cols, drop = FALSE]
      rows <- which(Matrix::rowSums(abs(zc)) > 0)
      if (!length(rows)) next
      zr <- as.matrix(zc[rows, , drop = FALSE])
      V[rows, rows] <- V[rows, rows] + zr %*% covs[[i]] %*% t(zr)
    }
    off <- off + n * reS[[i]]$blockReps
  }
  pl <- fit$obj$env$parList(fit$fit$par, fit$fit$parfull)
  Xd <- as.matrix(getME(fit, "Xd"))
  resvar <- if (ncol(Xd) && family(fit)$family == "gaussian") exp(drop(Xd %*% pl$betad)) else rep(0, N)
  diag(V) <- diag(V) + resvar
  V
}
exact_loglik <- function(V, X, y, beta, reml) {
  N <- length(y); p <- ncol(X)
  U <- chol(V)
  Xs <- backsolve(U, X, transpose = TRUE); ys <- backsolve(U, y, transpose = TRUE)
  bgls <- qr.coef(qr(Xs), ys)
  r <- backsolve(U, y - X %*% beta, transpose = TRUE)
  ldV <- 2 * sum(log(diag(U)))
  ll <- if (reml) -0.5 * ((N - p) * log(2 * pi) + ldV + determinant(crossprod(Xs))$modulus + sum(r^2))
        else -0.5 * (N * log(2 * pi) + ldV + sum(r^2))
  list(logLik = as.numeric(ll), beta_gls = unname(bgls))
}
first_group_rows <- function(fit) {
  g <- fit$modelInfo$reTrms$cond$flist[[1]]
  which(g == g[1])
}

num <- function(x) as.numeric(x)
tmb_record <- function(id, call, data_name, identifiability = "identified", notes = NULL,
                       equivalent = NULL, homog = NULL, local_optimum = FALSE, restarts = TRUE) {
  warn <- character(0)
  fit <- tryCatch(withCallingHandlers(eval(parse(text = call)),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") }),
    error = function(e) e)
  if (inherits(fit, "error")) {
    cat(sprintf("%-26s ERROR %s\n", id, conditionMessage(fit)))
    return(list(id = id, package = "glmmTMB", version = as.character(packageVersion("glmmTMB")), call = call,
                control = CONTROL_TEXT, data = data_name, error = conditionMessage(fit), warnings = I(warn),
                convergence = list(converged = FALSE), identifiability = identifiability, degenerate = TRUE,
                reliable = FALSE, notes = notes))
  }
  first <- list(objective = fit$fit$objective, convergence = fit$fit$convergence, message = fit$fit$message,
                max_abs_grad = max(abs(fit$obj$gr(fit$fit$par))), pdHess = fit$sdr$pdHess, warnings = I(warn))
  pol <- polish(fit); fit <- pol$fit
  reml <- isTRUE(fit$modelInfo$REML)
  gaussian <- family(fit)$family == "gaussian"
  ll <- -fit$fit$objective       # logLik(fit) is NA when the Hessian is not positive definite
  par <- fit$fit$par
  th <- getME(fit, "theta")
  vc <- VarCorr(fit)$cond
  reS <- fit$modelInfo$reStruc$condReStruc
  ntheta <- vapply(reS, function(r) r$blockNumTheta, 0)
  idx <- split(seq_along(th), rep(seq_along(reS), ntheta))
  terms <- lapply(seq_along(reS), function(i) {
    v <- vc[[i]]
    struc <- names(glmmTMB:::.valid_covstruct)[match(reS[[i]]$blockCode, glmmTMB:::.valid_covstruct)]
    cols <- colnames(v); n <- length(cols)
    times <- if (struc == "ou") reS[[i]]$times else NULL
    rebuilt <- cov_from_theta(struc, th[idx[[i]]], n, times)
    list(term = names(reS)[i], group = names(vc)[i], covstruct = struc,
         covstruct_as_fitted = if (i %in% homog) paste0("hom", struc, " (diag/cs with tied log-SDs via map)") else struc,
         columns = I(cols), n_groups = reS[[i]]$blockReps, block_size = n,
         times = if (!is.null(times)) I(times),
         cov = if (n <= 32) unname(as.matrix(v)), sd = I(unname(attr(v, "stddev"))),
         corr = if (n <= 32) unname(attr(v, "correlation")),
         corr_first_row_head = I(unname(attr(v, "correlation")[1, seq_len(min(n, 12))])),
         theta = I(unname(th[idx[[i]]])),
         param_check_maxdiff = max(abs(rebuilt - unname(as.matrix(v)))))
  })
  fe <- fixef(fit)$cond
  se <- sqrt(diag(vcov(fit)$cond))
  betad <- fixef(fit)$disp
  zerodisp <- if (gaussian) glmmTMB:::zeroDisp(fit) else NA
  sig <- if (!gaussian || zerodisp || length(betad) != 1) NA else sigma(fit)
  gmax <- max(abs(fit$obj$gr(fit$fit$par)))
  marg <- tryCatch(unname(head(predict(fit, re.form = NA), 10)), error = function(e) NULL)
  # exact likelihood at the reported estimates
  covs <- lapply(vc, function(v) unname(as.matrix(v)))
  V <- tmb_marginal(fit, covs)
  X <- as.matrix(getME(fit, "X")); y <- fit$obj$env$data$yobs
  ex <- if (gaussian) exact_loglik(V, X, y, fe, reml) else list(logLik = NA, beta_gls = NA)
  rows <- first_group_rows(fit)
  sds <- unlist(lapply(terms, `[[`, "sd"))
  cors <- unlist(lapply(vc, function(v) { r <- attr(v, "correlation"); r[upper.tri(r)] }))
  sd_scale <- if (gaussian) stats::sd(y) else 1
  boundary <- any(sds < 1e-3 * sd_scale) || any(abs(cors) > 0.999) ||
    (gaussian && !zerodisp && length(betad) == 1 && exp(betad / 2) < 1e-3 * sd_scale)
  converged <- isTRUE(fit$sdr$pdHess) && is.finite(ll) && gmax < 1e-3
  hess_eig <- tryCatch(range(eigen(optimHess(fit$fit$par, fit$obj$fn, fit$obj$gr), symmetric = TRUE, only.values = TRUE)$values),
                       error = function(e) c(NA, NA))
  lap <- if (gaussian) NULL else laplace_dense(fit, covs)
  precision_limited <- if (gaussian) abs(ex$logLik - ll) > 1e-6 else !isTRUE(abs(lap - ll) <= 1e-6)
  rs <- if (restarts) restart_fits(fit) else NULL
  rs_best <- if (length(rs)) max(vapply(rs, function(r) if (is.null(r$logLik)) -Inf else r$logLik, 0)) - ll
  if (length(rs) && rs_best > 1e-6) local_optimum <- TRUE
  degenerate <- !isTRUE(fit$sdr$pdHess) || boundary || identifiability != "identified" || local_optimum
  rec <- list(
    id = id, package = "glmmTMB", version = as.character(packageVersion("glmmTMB")),
    call = call, control = CONTROL_TEXT, data = data_name, REML = reml, nobs = nobs(fit),
    logLik = ll, df = length(fit$fit$par) + if (reml) length(fe) else 0, objective = -2 * ll,
    logLik_exact_at_estimates = ex$logLik, logLik_exact_minus_glmmTMB = ex$logLik - ll,
    logLik_laplace_dense_at_estimates = lap, logLik_laplace_dense_minus_glmmTMB = if (!is.null(lap)) lap - ll,
    fixef = as.list(fe), fixef_se = as.list(se), fixef_gls_at_estimates_maxdiff = max(abs(ex$beta_gls - fe)),
    sigma = sig, dispformula = deparse(fit$modelInfo$allForm$dispformula), zero_dispersion = zerodisp,
    betad = as.list(betad), sigma_check = if (!is.na(sig)) sig - exp(betad / 2),
    terms = terms,
    par = list(values = I(unname(par)), names = I(names(par)),
               beta = I(unname(par[names(par) == "beta"])), betad = I(unname(par[names(par) == "betad"])),
               theta = I(unname(par[names(par) == "theta"]))),
    theta_full = I(unname(th)), theta_names = I(glmmTMB:::getAllParnames(fit, full = TRUE)$theta),
    map = if (length(fit$modelInfo$map)) lapply(fit$modelInfo$map, function(m) I(as.integer(m))),
    convergence = list(converged = converged, pdHess = fit$sdr$pdHess, code = fit$fit$convergence,
                       message = fit$fit$message, max_abs_grad = gmax, polished = pol$polished),
    optimizer_first = first,
    restarts = rs, restart_best_minus_logLik = rs_best,
    identifiability = identifiability, boundary = boundary, local_optimum = local_optimum,
    precision_limited = precision_limited, degenerate = degenerate,
    reliable = converged && !precision_limited && !degenerate,
    hessian_eigen_range = I(hess_eig),
    first_group = list(group = names(fit$modelInfo$reTrms$cond$flist)[1], rows = I(rows),
                       marginal_cov = unname(V[rows, rows, drop = FALSE])),
    fitted_head = I(unname(head(fitted(fit), 10))), predict_marginal_head = if (!is.null(marg)) I(marg),
    notes = notes)
  if (!is.null(equivalent)) {
    eq <- eval(parse(text = equivalent$call))
    ell <- num(logLik(eq))
    Veq <- equivalent_marginal(eq, rows)
    rec$equivalent <- list(package = equivalent$package, call = equivalent$call, logLik = ell,
                           logLik_glmmTMB_minus_equivalent = ll - ell,
                           logLik_exact_minus_equivalent = ex$logLik - ell,
                           fixef = as.list(if (inherits(eq, "merMod")) lme4::fixef(eq) else if (inherits(eq, "gls")) coef(eq) else nlme::fixef(eq)),
                           marginal_cov_first_group = unname(Veq),
                           marginal_cov_maxabsdiff = if (!is.null(Veq)) max(abs(Veq - V[rows, rows])),
                           extra = if (inherits(eq, "merMod")) lme4_extra(eq) else nlme_extra(eq))
  }
  cat(sprintf("%-26s rel=%d ll=%14.8f exact-ll=%8.1e g=%.0e pd=%s pol=%s bnd=%s id=%s rst=%.1e%s\n", id, rec$reliable, ll, if (gaussian) ex$logLik - ll else lap - ll, gmax,
              fit$sdr$pdHess, pol$polished, boundary, identifiability, if (is.null(rs_best)) NA else rs_best,
              if (!is.null(rec$equivalent)) sprintf(" eq=%.1e Vd=%.1e", rec$equivalent$logLik_glmmTMB_minus_equivalent,
                                                    rec$equivalent$marginal_cov_maxabsdiff) else ""))
  rec
}
equivalent_marginal <- function(eq, rows) {
  if (inherits(eq, "merMod")) {
    Z <- getME(eq, "Z"); L <- getME(eq, "Lambda")
    ZL <- as.matrix((Z %*% L)[rows, , drop = FALSE])
    if (!isLMM(eq)) return(tcrossprod(ZL))      # GLMM: link-scale covariance, no residual
    return(sigma(eq)^2 * (tcrossprod(ZL) + diag(length(rows))))
  }
  grp <- getGroups(eq)
  if (is.list(grp) && !is.factor(grp)) grp <- grp[[length(grp)]]
  lev <- as.character(grp[rows[1]])
  if (!all(which(as.character(grp) == lev) == rows)) return(NULL)
  m <- if (inherits(eq, "lme")) getVarCov(eq, individuals = lev, type = "marginal")[[1]]
       else getVarCov(eq, individual = lev)
  matrix(as.numeric(m), nrow(m))
}
lme4_extra <- function(eq) list(varcorr = as.data.frame(VarCorr(eq)), sigma = sigma(eq),
                                optimizer_messages = I(as.character(unlist(eq@optinfo$conv$lme4$messages))))
nlme_extra <- function(eq) {
  res <- list(sigma = eq$sigma, method = eq$method)
  if (!is.null(eq$modelStruct$corStruct))
    res$cor_natural <- as.list(coef(eq$modelStruct$corStruct, unconstrained = FALSE))
  if (!is.null(eq$modelStruct$varStruct))
    res$var_natural <- as.list(coef(eq$modelStruct$varStruct, unconstrained = FALSE))
  if (inherits(eq, "lme")) {
    vc <- VarCorr(eq)   # as nlme formats it (about 7 significant digits)
    res$varcorr <- list(rownames = I(rownames(vc)), variance = I(as.numeric(vc[, "Variance"])),
                        stddev = I(as.numeric(vc[, "StdDev"])))
  }
  res
}
lctl <- "lmerControl(optimizer = 'nloptwrap', optCtrl = list(ftol_abs = 1e-14, ftol_rel = 1e-14, xtol_abs = 1e-12, xtol_rel = 1e-12, maxeval = 1e5))"
eq_lme4 <- function(call) list(package = paste("lme4", packageVersion("lme4")), call = sub(")$", paste0(", control = ", lctl, ")"), call))
eq_nlme <- function(call) list(package = paste("nlme", packageVersion("nlme")), call = call)
nctl <- "lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, msMaxEval = 2000, tolerance = 1e-10, msTol = 1e-12, opt = 'nlminb')"
gctl <- "glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-12, opt = 'nlminb')"
nl <- function(fmt, ...) sprintf(fmt, ...)
# tolPwrss: with glmer's default PIRLS tolerance (1e-7) its Laplace logLik for cbpp_homcs_ml is 8e-6 below
# the value at its own estimates (checked with laplace_dense()); 1e-12 removes that.
gctl_glmer <- "glmerControl(optimizer = 'nloptwrap', tolPwrss = 1e-12, optCtrl = list(ftol_abs = 1e-14, ftol_rel = 1e-14, xtol_abs = 1e-12, xtol_rel = 1e-12, maxeval = 1e5))"
eq_glmer <- function(call) list(package = paste("lme4", packageVersion("lme4")), call = sub(")$", paste0(", control = ", gctl_glmer, ")"), call))

# Binomial GLMM: the Laplace approximation recomputed densely (independently of TMB) at the reported
# estimates: b = Lam u with Lam Lam' = G (symmetric square root), mode of
# sum dbinom(y, size, plogis(X beta + Z Lam u), log = TRUE) - |u|^2/2 by Newton to |step| < 1e-13, then
# that value - 1/2 log|Lam' Z' W Z Lam + I|.
laplace_dense <- function(fit, covs) {
  if (family(fit)$family != "binomial") return(NA)
  reS <- fit$modelInfo$reStruc$condReStruc
  G <- as.matrix(Matrix::bdiag(lapply(seq_along(reS), function(i) kronecker(diag(reS[[i]]$blockReps), covs[[i]]))))
  e <- eigen(G, symmetric = TRUE); Lam <- e$vectors %*% diag(sqrt(pmax(e$values, 0)), nrow(G))
  resp <- model.response(model.frame(fit)); y <- resp[, 1]; size <- rowSums(resp)
  ZL <- as.matrix(getME(fit, "Z") %*% Lam); eta0 <- drop(as.matrix(getME(fit, "X")) %*% fixef(fit)$cond)
  q <- ncol(ZL); u <- rep(0, q)
  for (it in 1:200) {
    p <- plogis(eta0 + drop(ZL %*% u))
    step <- solve(crossprod(ZL * sqrt(size * p * (1 - p))) + diag(q), drop(crossprod(ZL, y - size * p)) - u)
    u <- u + step
    if (max(abs(step)) < 1e-13) break
  }
  p <- plogis(eta0 + drop(ZL %*% u))
  sum(dbinom(y, size, p, log = TRUE)) - 0.5 * sum(u^2) -
    0.5 * as.numeric(determinant(crossprod(ZL * sqrt(size * p * (1 - p))) + diag(q))$modulus)
}

# Refit from 2 deterministic perturbed starts (see the top; a shift that makes the objective non-finite
# at the start is halved until it is finite, theta_shift is the one used); the record's fit object is left evaluated
# at its own optimum afterwards.
restart_fits <- function(fit, delta = 0.5) {
  p_hat <- fit$fit$par; ti <- which(names(p_hat) == "theta")
  pats <- list(rep_len(c(delta, -delta), length(ti)), rep_len(c(-delta, delta), length(ti)))
  res <- lapply(pats, function(d) {
    for (k in 0:5) {   # shrink the shift until the start is admissible (toep: R must stay positive definite)
      p <- p_hat; p[ti] <- p[ti] + d
      if (is.finite(suppressWarnings(fit$obj$fn(p)))) break
      d <- d / 2
    }
    pl <- fit$obj$env$parList(p)
    st <- pl[intersect(c("beta", "betad", "theta"), names(pl))]
    f2 <- tryCatch(suppressWarnings(update(fit, start = st)), error = function(e) e)
    if (inherits(f2, "error")) return(list(theta_shift = I(d), error = conditionMessage(f2)))
    list(theta_shift = I(d), logLik = -f2$fit$objective, max_abs_grad = max(abs(f2$obj$gr(f2$fit$par))),
         pdHess = f2$sdr$pdHess, code = f2$fit$convergence, theta = I(unname(f2$fit$par[names(f2$fit$par) == "theta"])))
  })
  fit$obj$fn(p_hat)
  res
}

fits <- list()
add <- function(rec) fits[[rec$id]] <<- rec
# ---- fits -------------------------------------------------------------------------------------------
# One structured term over the levels of a within-group factor f, groups g, replicates in each cell.
SPECS <- list(
  pst = list(data = "pastes", fixed = "strength ~ 1", f = "cask", g = "batch", n = 3,
             what = "10 batches x 3 casks x 2 samples per cask"),
  mach = list(data = "machines", fixed = "score ~ Machine", f = "Machine", g = "Worker", n = 3,
              what = "6 workers x 3 machines x 3 replicates"),
  rm = list(data = "repmeas", fixed = "y ~ t + arm", f = "factor(visit)", g = "id", n = 5,
            what = "80 subjects x 5 visits x 2 replicates; true model: ou over t + residual"))
lme4_dummies <- function(sp) {
  levs <- levels(get(sp$data)[[sub("^factor\\((.*)\\)$", "\\1", sp$f)]])
  paste(sprintf("(0 + dummy(%s, '%s') | %s)", sp$f, levs, sp$g), collapse = " + ")
}
structured_fit <- function(key, S, reml, prefix = "", extra_note = NULL, ...) {
  sp <- SPECS[[key]]; sfx <- if (reml) "reml" else "ml"; R <- if (reml) "TRUE" else "FALSE"
  n <- sp$n; ff <- sub("^factor\\((.*)\\)$", "\\1", sp$f)   # factor column for lme4's g:f
  struc <- switch(S, homcs = "cs", homdiag = "diag", S)
  ri <- nzchar(prefix)        # prefix "(1 | g) + ": its theta entry comes first
  mv <- switch(S, homcs = c(rep(1, n), 2), homdiag = rep(1, n), NULL)
  map <- if (is.null(mv)) "" else sprintf(", map = list(theta = factor(c(%s)))", paste(c(if (ri) 1, mv + ri), collapse = ", "))
  term <- sprintf("%s(0 + %s | %s)", struc, sp$f, sp$g)
  call <- nl("glmmTMB(%s + %s%s%s, data = %s, REML = %s, control = ctl)", sp$fixed, prefix, term, map, sp$data, R)
  eqf <- switch(S,
    us = if (!ri) sprintf("(0 + %s | %s)", sp$f, sp$g),
    diag = paste0(if (ri) sprintf("(1 | %s) + ", sp$g), lme4_dummies(sp)),
    homdiag = paste0(if (ri) sprintf("(1 | %s) + ", sp$g), sprintf("(1 | %s:%s)", sp$g, ff)),
    homcs = if (!ri) sprintf("(1 | %s) + (1 | %s:%s)", sp$g, sp$g, ff), NULL)
  eq <- if (!is.null(eqf)) eq_lme4(nl("lmer(%s + %s, %s, REML = %s)", sp$fixed, eqf, sp$data, R))
  notes <- paste(c(sp$what, if (S == "homcs") "homcs = cs with the log-SDs tied by map; lme4 equivalent (1 | g) + (1 | g:f) holds when rho >= 0",
                   if (S == "homdiag") "homdiag = diag with the log-SDs tied by map (= lme4 (1 | g:f), plus (1 | g) when the intercept term is present)", extra_note), collapse = "; ")
  id <- paste0(key, if (ri) "_ri", "_", S, "_", sfx)
  tmb_record(id, call, sp$data, homog = if (S %in% c("homcs", "homdiag")) if (ri) 2 else 1,
             notes = notes, equivalent = eq, ...)
}
for (reml in c(FALSE, TRUE)) {
  for (key in names(SPECS)) for (S in c("us", "diag", "cs", "ar1", "toep", "homcs", "homdiag"))
    add(structured_fit(key, S, reml))
}

# ---- machines with a worker intercept added: (1 | Worker) + S(0 + Machine | Worker) -----------------
# Only where the two terms are not redundant: us (and cs, whose common correlation absorbs the
# intercept: its SD -> 0) are not. These give a non-degenerate random intercept + ar1 fit (rm_ri_ar1_*
# is on the boundary, see there); ri + homdiag is nlme's classic (1 | Worker/Machine) model.
for (reml in c(FALSE, TRUE)) for (S in c("ar1", "diag", "homdiag"))
  add(structured_fit("mach", S, reml, prefix = "(1 | Worker) + ",
                     extra_note = "random intercept + structured term over machines + residual"))

# ---- repmeas: the true structure (ou over the visit times) and ar1 + random intercept ---------------
for (reml in c(FALSE, TRUE)) {
  sfx <- if (reml) "reml" else "ml"; R <- if (reml) "TRUE" else "FALSE"
  add(tmb_record(paste0("rm_ou_", sfx),
    nl("glmmTMB(y ~ t + arm + ou(0 + numFactor(t) | id), data = repmeas, REML = %s, control = ctl)", R),
    "repmeas", notes = paste(SPECS$rm$what, "; ou over the 5 visit times 0, 1, 2.5, 4, 7 (the simulated model: SD 2, correlation exp(-0.3 |dt|), i.e. theta = (log 2, log 0.3), residual SD 1)")))
  add(tmb_record(paste0("rm_ri_ar1_", sfx),
    nl("glmmTMB(y ~ t + arm + (1 | id) + ar1(0 + factor(visit) | id), data = repmeas, REML = %s, control = ctl)", R),
    "repmeas", notes = paste(SPECS$rm$what, "; random intercept + ar1 over visit POSITIONS 1..5 + residual. The simulated effects have no subject-level intercept (their correlation decays towards 0), so the intercept SD goes to ~0 (boundary) and the logLik equals rm_ar1's: kept flagged; mach_ri_ar1_* is the non-degenerate random intercept + ar1 reference")))
}

# ---- GLMM: binomial cbpp, structured term over the 4 periods of a herd (ML, Laplace) ------------------
add(tmb_record("cbpp_ar1_ml",
  "glmmTMB(cbind(incidence, size - incidence) ~ period + ar1(0 + period | herd), family = binomial, data = cbpp, control = ctl)",
  "cbpp", notes = "15 herds x 4 periods, 56 herd-periods observed (herd 2 lacks period 4, herd 8 has period 1 only), one binomial count per cell; ar1 over period positions; Laplace approximation"))
add(tmb_record("cbpp_cs_ml",
  "glmmTMB(cbind(incidence, size - incidence) ~ period + cs(0 + period | herd), family = binomial, data = cbpp, control = ctl)",
  "cbpp", notes = "heterogeneous cs over the 4 periods; Laplace approximation"))
add(tmb_record("cbpp_homcs_ml",
  "glmmTMB(cbind(incidence, size - incidence) ~ period + cs(0 + period | herd), map = list(theta = factor(c(1, 1, 1, 1, 2))), family = binomial, data = cbpp, control = ctl)",
  "cbpp", homog = 1, notes = "homcs (tied log-SDs via map); the Laplace approximation is invariant under the linear map from (herd, herd:period) effects to the 4 period effects, so glmer's Laplace fit of (1 | herd) + (1 | herd:period) is the same model when rho >= 0",
  equivalent = eq_glmer("glmer(cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | herd:period), family = binomial, data = cbpp)")))

writeLines(toJSON(list(
  description = "glmmTMB fits with structured random-effect covariances plus a residual variance, on data with replicates in every group x column cell (mixedfx issue 10); see make_structured.R for the parameterisations and make_structured_rep.R for the additions",
  glmmTMB_version = as.character(packageVersion("glmmTMB")), TMB_version = as.character(packageVersion("TMB")),
  lme4_version = as.character(packageVersion("lme4")), nlme_version = as.character(packageVersion("nlme")),
  R = R.version.string, control = CONTROL_TEXT,
  datasets = datasets, fits = unname(fits)),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "with", length(fits), "fits\n")
