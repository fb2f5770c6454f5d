# geepack::geeglm reference fits (mixedfx issue 12: GEE).
# Usage (from the repository root): Rscript tests/reference/make_geepack.R tests/reference/geepack.json
# Data: the bundled copies src/mixedfx/datasets/data/{ohio,dietox,respiratory,seizure}.csv.gz written by
# make_gee_data.R (factor levels from datasets.json), so R and Python fit the same numbers.
# Deterministic (no random numbers); run with one BLAS thread (OPENBLAS_NUM_THREADS=1).
#
# Models (every one with corstr independence, exchangeable, ar1, unstructured):
#   ohio        geeglm(resp ~ age + smoke, family = binomial, id = id)
#   dietox      geeglm(Weight ~ Time + Cu, family = gaussian, id = Pig)
#   respiratory geeglm(outcome ~ treat + sex + age + baseline, family = binomial, id = subject)
#               (subject = 100 * center + id: geepack's `id` is numbered within center. geepack forms
#               clusters from runs of equal consecutive id values, so id = id gives the same 111
#               clusters here; "id_equivalence_maxdiff" checks that.)
#   seizure     geeglm(y ~ x * trt + offset(log(t)), family = poisson, id = id) on the long data of
#               geepack's ?seizure example (time 0 = 8-week baseline: t = 8, x = 0; times 1..4: t = 2,
#               x = 1); the x:trt coefficient is the treatment-by-period interaction.
# All with control = geese.control(epsilon = 1e-12, maxit = 200); rows are in cluster order and
# within-cluster time order, waves = NULL (so geepack uses the position within the cluster).
#
# Recorded per fit: coefficients; robust (sandwich, geese's vbeta) and naive (model-based, vbeta.naiv)
# variance matrices and SEs; alpha (working-correlation parameters; for unstructured named
# "alpha.j:k", j < k positions, in the order 1:2, 1:3, ..., (n-1):n) and its sandwich variance diag;
# phi = the scale (geese's gamma); QIC() output (QIC, QICu, quasi-likelihood, CIC, params, QICC);
# iterations (the last "iter = k" printed by geese's trace) and geese's error code
# (0 = converged; converged = error == 0 && iterations < maxit); number of clusters and sizes.
# "moment_check": geepack's estimators of phi and alpha are moment estimators from the Pearson
# residuals r = (y - mu) / sqrt(V(mu)) at the final beta; this script recomputes them with
#   phi   = sum(r^2) / (N - p)
#   exch  alpha = sum_i sum_{j<k} r_ij r_ik / (phi * (sum_i n_i (n_i - 1) / 2 - p))
#   ar1   alpha = sum_i sum_j r_ij r_i,j+1 / (phi * (sum_i (n_i - 1) - p))       (lag-1 pairs only)
#   unstr alpha_jk = sum_i r_ij r_ik / (phi * (n_jk - p))     (n_jk = clusters with both positions)
# and the same without the "- p" in the denominators, and records the max abs differences from
# geepack's values (so that the convention that matches is documented by the numbers).
# Observed (geepack 1.3.9): phi and the exchangeable and unstructured alphas equal the "no_p" versions
# to ~1e-15 (no degrees-of-freedom correction anywhere); the ar1 alpha matches NEITHER lag-1 moment
# estimator (differences 0.016-0.10): geepack estimates ar1 through its correlation estimating
# equation, not the lag-1 moment formula, so a reimplementation must reproduce that equation.
# dietox unstructured does not converge (error = 1 after 200 iterations; alphas drift above 1) and is
# kept with converged = false; seizure unstructured never returns and is listed in "skipped".
# respiratory (exchangeable = independence) and seizure (all corstr except ar1) give identical beta:
# all respiratory covariates are constant within a cluster with equal cluster sizes, and the seizure
# model is saturated in the 2 x 2 (x, trt) cells.
# "anova": geepack's anova.geeglm (sequential Wald tests, each term in the refit with the terms before it)
# for six of the fits.
suppressPackageStartupMessages({library(geepack); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_geepack.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))      # fingerprint()
source(file.path(here, "bundled.R"))          # datadir, manifest, datasets, load_bundled(), fp_data()

datasets <- list()
ohio <- fp_data("ohio", load_bundled("ohio"))
dietox <- fp_data("dietox", load_bundled("dietox"))
respiratory <- fp_data("respiratory", load_bundled("respiratory"))
seizure <- fp_data("seizure", load_bundled("seizure"))

ctl <- geese.control(epsilon = 1e-12, maxit = 200)
CONTROL_TEXT <- "control = geese.control(epsilon = 1e-12, maxit = 200)"
CORSTRS <- c("independence", "exchangeable", "ar1", "unstructured")

vec <- function(x) I(unname(as.numeric(x)))
mat <- function(m) I(unname(lapply(seq_len(nrow(m)), function(i) as.numeric(m[i, ]))))

moment_check <- function(fit, corstr) {
  g <- fit$geese
  mu <- fitted(fit); y <- fit$y
  r <- (y - mu) / sqrt(fit$family$variance(mu))
  id <- fit$id
  N <- length(y); p <- length(g$beta)
  res <- list()
  for (adj in c(TRUE, FALSE)) {
    pp <- if (adj) p else 0
    phi <- sum(r^2) / (N - pp)
    cl <- split(r, factor(id, levels = unique(id)))
    a <- switch(corstr,
      independence = numeric(0),
      exchangeable = {
        s <- sum(sapply(cl, function(v) (sum(v)^2 - sum(v^2)) / 2))
        s / (phi * (sum(sapply(cl, function(v) length(v) * (length(v) - 1) / 2)) - pp))
      },
      ar1 = {
        s <- sum(sapply(cl, function(v) if (length(v) > 1) sum(v[-1] * v[-length(v)]) else 0))
        s / (phi * (sum(sapply(cl, length) - 1) - pp))
      },
      unstructured = {
        m <- max(sapply(cl, length)); o <- numeric(0)
        for (j in 1:(m - 1)) for (k in (j + 1):m) {
          pr <- sapply(cl, function(v) if (length(v) >= k) v[j] * v[k] else NA)
          o <- c(o, sum(pr, na.rm = TRUE) / (phi * (sum(!is.na(pr)) - pp)))
        }
        o
      })
    res[[if (adj) "minus_p" else "no_p"]] <- list(
      phi = phi, alpha = vec(a), phi_absdiff = abs(phi - g$gamma[[1]]),
      alpha_maxabsdiff = if (length(a)) max(abs(a - g$alpha)) else 0)
  }
  res
}

fits <- list()
add_fit <- function(id, call, dataset, corstr, notes = NULL) {
  tr <- capture.output(fit <- eval(parse(text = call)))
  its <- as.integer(sub("^iter = ", "", grep("^iter = ", tr, value = TRUE)))
  iterations <- if (length(its)) max(its) else NA
  g <- fit$geese
  invisible(capture.output(q <- QIC(fit)))   # QIC refits the independence model (trace on)
  err <- g$error
  rec <- list(
    id = id, dataset = dataset, package = "geepack", version = as.character(packageVersion("geepack")),
    call = call, control = CONTROL_TEXT,
    family = fit$family$family, link = fit$family$link, corstr = corstr,
    nobs = length(fit$y), n_clusters = length(g$clusz), max_cluster_size = max(g$clusz),
    cluster_size_counts = as.list(table(g$clusz)),
    coef_names = I(names(coef(fit))), coefficients = vec(g$beta),
    se_robust = vec(sqrt(diag(g$vbeta))), se_naive = vec(sqrt(diag(g$vbeta.naiv))),
    vcov_robust = mat(g$vbeta), vcov_naive = mat(g$vbeta.naiv),
    summary_std_err = vec(summary(fit)$coefficients[, "Std.err"]),
    summary_wald = vec(summary(fit)$coefficients[, "Wald"]),
    summary_p = vec(summary(fit)$coefficients[, "Pr(>|W|)"]),
    alpha_names = I(as.character(names(g$alpha))), alpha = vec(g$alpha),
    alpha_se_robust = vec(if (length(g$alpha)) sqrt(diag(as.matrix(g$valpha))) else numeric(0)),
    phi = g$gamma[[1]], phi_se_robust = sqrt(g$vgamma[1, 1]),
    qic = as.list(q), iterations = iterations, error = err,
    converged = (err == 0 && !is.na(iterations) && iterations < ctl$maxit),
    moment_check = moment_check(fit, corstr))
  if (!is.null(notes)) rec$notes <- notes
  fits[[id]] <<- rec
  cat(sprintf("%-28s err=%d iter=%s alpha=%s phi=%.6g\n", id, err, iterations,
              paste(signif(g$alpha, 5), collapse = ","), g$gamma[[1]]))
  invisible(fit)
}

short <- c(independence = "ind", exchangeable = "exch", ar1 = "ar1", unstructured = "unstr")
models <- list(
  ohio = "resp ~ age + smoke, family = binomial, data = ohio, id = id",
  dietox = "Weight ~ Time + Cu, family = gaussian, data = dietox, id = Pig",
  respiratory = "outcome ~ treat + sex + age + baseline, family = binomial, data = respiratory, id = subject",
  seizure = "y ~ x * trt + offset(log(t)), family = poisson, data = seizure, id = id")
# seizure unstructured never returns: geese's C code spun at 100% CPU for > 10 minutes without
# returning (geepack 1.3.9), so it is skipped and listed in "skipped".
SKIP <- list(seizure_unstr = "geese never returns (still running after > 10 min at 100% CPU; geepack 1.3.9): skipped")
skipped <- list()
ctl_trace <- ctl; ctl_trace$trace <- TRUE   # same control plus trace (to count iterations)
for (ds in names(models)) for (cs in CORSTRS) {
  call <- sprintf('geeglm(%s, corstr = "%s", control = ctl_trace)', models[[ds]], cs)
  id <- paste(ds, short[[cs]], sep = "_")
  if (id %in% names(SKIP)) {
    skipped[[id]] <- list(id = id, call = sub("ctl_trace", "geese.control(epsilon = 1e-12, maxit = 200)", call),
                          reason = SKIP[[id]])
    next
  }
  add_fit(id, call, ds, cs)
  fits[[id]]$call <- sub("ctl_trace", "geese.control(epsilon = 1e-12, maxit = 200)", call)
}

# respiratory: geepack's own id (numbered within center) gives the same clusters (runs of equal ids)
id_equiv <- list()
for (cs in CORSTRS) {
  a <- geeglm(outcome ~ treat + sex + age + baseline, family = binomial, data = respiratory, id = id,
              corstr = cs, control = ctl)
  b <- geeglm(outcome ~ treat + sex + age + baseline, family = binomial, data = respiratory, id = subject,
              corstr = cs, control = ctl)
  id_equiv[[cs]] <- max(abs(c(a$geese$beta - b$geese$beta, a$geese$vbeta - b$geese$vbeta,
                              a$geese$alpha - b$geese$alpha)))
}

# independence check: the naive covariance is phi * (X'WX)^-1 from glm, i.e. vcov(glm) rescaled
glm_check <- list()
for (ds in names(models)) {
  gcall <- sub(", id = [A-Za-z]+$", "", models[[ds]])
  gl <- eval(parse(text = sprintf("glm(%s, control = glm.control(epsilon = 1e-14, maxit = 100))", gcall)))
  f <- fits[[paste0(ds, "_ind")]]
  vn <- do.call(rbind, f$vcov_naive)
  vg <- vcov(gl) / summary(gl)$dispersion * f$phi
  glm_check[[ds]] <- list(coef_maxabsdiff = max(abs(coef(gl) - f$coefficients)),
                          vcov_naive_maxabsdiff = max(abs(vg - vn)),
                          glm_dispersion = summary(gl)$dispersion)
}

# anova.geeglm: geepack's sequential Wald tests (term i tested in the refitted model with terms 1..i,
# same corstr and control, robust covariance of that refit)
ANOVA <- list(dietox_exch = c("dietox", "exchangeable"), dietox_ar1 = c("dietox", "ar1"),
              ohio_exch = c("ohio", "exchangeable"), respiratory_ar1 = c("respiratory", "ar1"),
              seizure_exch = c("seizure", "exchangeable"), seizure_ar1 = c("seizure", "ar1"))
anova_recs <- list()
for (id in names(ANOVA)) {
  ds <- ANOVA[[id]][1]; cs <- ANOVA[[id]][2]
  fit <- eval(parse(text = sprintf('geeglm(%s, corstr = "%s", control = ctl)', models[[ds]], cs)))
  a <- anova(fit)
  anova_recs[[id]] <- list(id = id, dataset = ds, corstr = cs, terms = I(rownames(a)), df = vec(a$Df),
                           X2 = vec(a$X2), p = vec(a[["P(>|Chi|)"]]))
}

writeLines(toJSON(list(
  description = "geepack::geeglm fits (mixedfx issue 12: GEE); see make_geepack.R for the models and the moment-estimator check",
  geepack_version = as.character(packageVersion("geepack")), R = R.version.string,
  control = CONTROL_TEXT, datasets = datasets,
  respiratory_id_equivalence_maxdiff = id_equiv, independence_glm_check = glm_check,
  fits = unname(fits), skipped = unname(skipped), anova = unname(anova_recs)),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "with", length(fits), "fits\n")
