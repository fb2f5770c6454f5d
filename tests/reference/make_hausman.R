# Hausman test references (mixedfx issue 12): the within (fixed-effects) estimator against plm's
# "within" model, and the Hausman statistic that mixedfx computes, H = d' (V_FE - V_RE)^{-1} d with
# d = b_FE - b_RE over the within-varying covariates, where (b_RE, V_RE) are lme4's REML fixef/vcov
# (NOT plm's Swamy-Arora "random" model; plm's phtest is recorded as well, for context only).
# "statistic"/"df" use the pseudo-inverse of V_FE - V_RE on its eigenvalues > TOL * the largest (dietox:
# the second eigenvalue is -2e-9 against 8e-4, an artefact of the two sigma^2 estimates in a direction
# with almost no between-pig information: the pig means of Time differ only for pigs with a missing
# week; df = 1); "statistic_solve" is plm's d' solve(V_FE - V_RE) d on all k covariates.
# Usage (from the repository root): Rscript tests/reference/make_hausman.R tests/reference/hausman.json
# Data: the bundled src/mixedfx/datasets/data/{dietox,longsim}.csv.gz (levels from datasets.json).
# Deterministic (no random numbers).
# Cases:
#   dietox : Weight ~ Time + Feed + Cu + (1 | Pig), rows with Feed missing dropped (Cu is constant
#            within pigs: no within estimate; plm's within formula Weight ~ Time + Feed); plm's
#            Swamy-Arora "random" model fails here (the pig means of Time do not vary once Time 1 is
#            dropped), so phtest is recorded as null)
#   longsim: y ~ t + x + group + (1 | id) (group constant within id)
suppressPackageStartupMessages({library(lme4); library(plm); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_hausman.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))      # fingerprint()
source(file.path(here, "bundled.R"))          # datadir, manifest, datasets, load_bundled(), fp_data()

dietox <- fp_data("dietox", load_bundled("dietox"))
longsim <- fp_data("longsim", load_bundled("longsim"))
dietox_cc <- dietox[!is.na(dietox$Feed), ]
TOL <- 1e-6

case <- function(id, data, lmer_formula, within_formula, index, notes = NULL) {
  m <- lmer(as.formula(lmer_formula), data = data, REML = TRUE)
  # plm turns its index columns into factors: index by the group and a row counter within it
  data$obs_in_group <- ave(seq_len(nrow(data)), data[[index]], FUN = seq_along)
  pdat <- pdata.frame(data, index = c(index, "obs_in_group"))
  fe <- plm(as.formula(within_formula), data = pdat, model = "within")
  re <- tryCatch(plm(as.formula(within_formula), data = pdat, model = "random"), error = function(e) NULL)
  vars <- names(coef(fe))
  d <- coef(fe) - fixef(m)[vars]
  Vd <- vcov(fe) - as.matrix(vcov(m))[vars, vars, drop = FALSE]
  H <- as.numeric(crossprod(d, solve(Vd, d)))
  # H with the pseudo-inverse of V_FE - V_RE on its eigenvalues > TOL * largest (negative ones,
  # possible since REML's sigma^2 is not the within sigma^2, are dropped and reported); df = their number
  e <- eigen(Vd, symmetric = TRUE)
  keep <- e$values > TOL * max(e$values)
  H_ginv <- sum(drop(crossprod(e$vectors[, keep, drop = FALSE], d))^2 / e$values[keep])
  # for information: the rank of the between-group variation of the within-varying covariates
  X <- getME(m, "X"); g <- getME(m, "flist")[[1]]
  gm <- apply(X, 2, function(col) ave(col, g))
  r <- qr(qr.resid(qr(gm[, setdiff(colnames(X), vars), drop = FALSE]), gm[, vars, drop = FALSE]))$rank
  ph <- if (is.null(re)) list(statistic = NA, parameter = NA, p.value = NA) else phtest(fe, re)
  n <- nobs(fe); ng <- length(unique(data[[index]])); k <- length(vars)
  list(id = id, lmer = lmer_formula, within = within_formula, index = I(index), nobs = n, ngroups = ng,
       within_vars = I(vars), fe_coef = I(unname(coef(fe))), fe_vcov = unname(vcov(fe)),
       fe_sigma2 = sum(residuals(fe)^2) / (n - ng - k), fe_df_resid = n - ng - k,
       re_coef = I(unname(fixef(m)[vars])), re_vcov = unname(as.matrix(vcov(m))[vars, vars, drop = FALSE]),
       reml_crit = REMLcrit(m), statistic_solve = H, df_solve = k,
       statistic = H_ginv, df = sum(keep), p_value = pchisq(H_ginv, sum(keep), lower.tail = FALSE),
       tol = TOL, between_rank = r,
       eigen_vdiff = I(eigen(Vd, symmetric = TRUE, only.values = TRUE)$values),
       plm_random_coef = if (is.null(re)) NULL else I(unname(coef(re)[vars])), plm_phtest_statistic = unname(ph$statistic),
       plm_phtest_df = unname(ph$parameter), plm_phtest_p = ph$p.value, notes = notes)
}
tests <- list(
  case("dietox", dietox_cc, "Weight ~ Time + Feed + Cu + (1 | Pig)", "Weight ~ Time + Feed", "Pig",
       notes = "rows with Feed NA dropped before fitting (as lmer and plm do)"),
  case("longsim", longsim, "y ~ t + x + group + (1 | id)", "y ~ t + x", "id"))
for (t in tests) cat(sprintf("%-8s H = %.6f (df %d, p = %.4g); solve() %.4f; plm phtest %.4f\n", t$id, t$statistic,
                             t$df, t$p_value, t$statistic_solve, t$plm_phtest_statistic))
writeLines(toJSON(list(
  description = "Hausman test of lme4 (REML) vs plm within estimator (mixedfx issue 12); see make_hausman.R",
  plm_version = as.character(packageVersion("plm")), lme4_version = as.character(packageVersion("lme4")),
  R = R.version.string, datasets = datasets, tests = tests),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "\n")
