# RLRsim::exactRLRT references (mixedfx issue 12: exact restricted likelihood ratio tests for a
# variance component, Crainiceanu & Ruppert 2004; Scheipl, Greven & Kuechenhoff 2008).
# Usage (from the repository root): Rscript tests/reference/make_rlrsim.R tests/reference/rlrsim.json
# Data: the bundled src/mixedfx/datasets/data/{sleepstudy,dyestuff,dyestuff2}.csv.gz (levels from datasets.json).
# Deterministic: set.seed(SEED) (RNGkind defaults of R >= 3.6: Mersenne-Twister, Inversion, Rejection)
# immediately before each exactRLRT call, nsim = 1e5; one BLAS thread. exactRLRT's p-value is the
# fraction of the simulated null sample STRICTLY greater than the observed RLRT (so 0 when none is, and
# 1 - P(sample = 0) < 1 when RLRT = 0, see dyestuff2), i.e. it is a Monte
# Carlo quantity: another implementation with another RNG should agree within ~3 * sqrt(p (1 - p) / nsim).
# The observed statistic is deterministic: RLRT = 2 (logLik_REML(mA) - logLik_REML(m0)) (truncated at
# 0); "rlrt_check" recomputes it from lme4's REML criteria.
# Tests (all fits lmer, REML = TRUE, default control):
#   intercept_only : m = lmer(Reaction ~ Days + (1 | Subject)); exactRLRT(m)   (H0: var(intercept) = 0;
#                    one variance component, so m is both the alternative and the model of the effect)
#   slope_given_int: mA = lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject));
#                    m0 = update(mA, . ~ . - (0 + Days | Subject));
#                    m  = update(mA, . ~ . - (1 | Subject)); exactRLRT(m, mA, m0)  (H0: var(slope) = 0)
#   int_given_slope: the same mA; m0 = update(mA, . ~ . - (1 | Subject));
#                    m = update(mA, . ~ . - (0 + Days | Subject)); exactRLRT(m, mA, m0)
#                    (H0: var(intercept) = 0 in the presence of an independent random slope)
#   slope_given_int_centred: RLRsim's ?exactRLRT example verbatim, Days centred: I(Days - 4.5).
#   dyestuff / dyestuff2: lmer(Yield ~ 1 + (1 | Batch)); exactRLRT(m) (bundled dyestuff, dyestuff2):
#                    a p-value away from 0, and a boundary fit (RLRT = 0).
#   longsim_x_slope: mA = lmer(y ~ t + (1 | id) + (0 + x | id)) on the bundled longsim, H0: var(x slope)
#                    = 0: an unbalanced design (unequal eigenvalues) with p about 0.33.
# Recorded: statistic, p-value, nsim, seed, the REML criteria, and a summary of the simulated null
# sample (fraction exactly 0, mean, quantiles 0.5/0.9/0.95/0.99/0.999, max) for distributional checks,
# and "mu", the normalized eigenvalues of Z' P0 Z that RLRTSim simulates with (Z of the model m).
suppressPackageStartupMessages({library(lme4); library(RLRsim); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_rlrsim.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))      # fingerprint()
source(file.path(here, "bundled.R"))          # datadir, manifest, datasets, load_bundled(), fp_data()
sleepstudy <- load_bundled("sleepstudy")
dyestuff <- load_bundled("dyestuff")
dyestuff2 <- load_bundled("dyestuff2")
fpd <- function(d) list(nrow = nrow(d), columns = I(names(d)), fingerprint = lapply(d, fingerprint))
datasets <- list(sleepstudy = fpd(sleepstudy), dyestuff = fpd(dyestuff), dyestuff2 = fpd(dyestuff2))
SEED <- 20240715L
NSIM <- 1e5

summ <- function(s) list(frac_zero = mean(s == 0), mean = mean(s),
                         quantile_probs = I(c(0.5, 0.9, 0.95, 0.99, 0.999)),
                         quantiles = I(unname(quantile(s, c(0.5, 0.9, 0.95, 0.99, 0.999), type = 7))),
                         max = max(s))
tests <- list()
run <- function(id, fits, test_call, notes = NULL, lm_null = "lm(Reaction ~ Days, data = sleepstudy)") {
  env <- new.env()
  for (nm in names(fits)) assign(nm, eval(parse(text = fits[[nm]]), envir = env), envir = env)
  set.seed(SEED)
  r <- eval(parse(text = test_call), envir = env)
  alt <- get(if (exists("mA", envir = env, inherits = FALSE)) "mA" else "m", envir = env)
  null_crit <- if (exists("m0", envir = env, inherits = FALSE)) REMLcrit(get("m0", envir = env)) else {
    # the null of exactRLRT(m) with one component: the linear model (REML of lm)
    l <- eval(parse(text = lm_null)); -2 * as.numeric(logLik(l, REML = TRUE))
  }
  check <- max(0, null_crit - REMLcrit(alt))
  # the eigenvalues RLRTSim simulates with (its own computation, normalized; the tested term is
  # scalar, so chol(cov2cor(Vr)) is the identity): mu = svd(t(resid of Z on X))$d^2 / max
  mm <- get("m", envir = env)
  Xm <- getME(mm, "X"); Zm <- as.matrix(getME(mm, "Z"))
  mu <- (svd(t(qr.resid(qr(Xm), Zm)), nu = 0, nv = 0)$d)^2
  mu <- mu / max(mu)
  tests[[id]] <<- list(id = id, fits = fits, call = test_call, seed = SEED, nsim = NSIM,
                       statistic = unname(r$statistic), p_value = unname(r$p.value),
                       method = r$method, reml_crit_alt = REMLcrit(alt), reml_crit_null = null_crit,
                       rlrt_check = check, rlrt_check_absdiff = abs(check - unname(r$statistic)),
                       null_sample = summ(r$sample), mu = I(mu), notes = notes)
  cat(sprintf("%-26s RLRT = %.6f  p = %g  (check %.6f)\n", id, r$statistic, r$p.value, check))
}

run("intercept_only", list(m = "lmer(Reaction ~ Days + (1 | Subject), data = sleepstudy, REML = TRUE)"),
    "exactRLRT(m, nsim = 1e5)")
fA <- "lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), data = sleepstudy, REML = TRUE)"
run("slope_given_int", list(mA = fA, m0 = "update(mA, . ~ . - (0 + Days | Subject))",
                            m = "update(mA, . ~ . - (1 | Subject))"),
    "exactRLRT(m, mA, m0, nsim = 1e5)")
run("int_given_slope", list(mA = fA, m0 = "update(mA, . ~ . - (1 | Subject))",
                            m = "update(mA, . ~ . - (0 + Days | Subject))"),
    "exactRLRT(m, mA, m0, nsim = 1e5)")
run("slope_given_int_centred",
    list(mA = "lmer(Reaction ~ I(Days - 4.5) + (1 | Subject) + (0 + I(Days - 4.5) | Subject), data = sleepstudy)",
         m0 = "update(mA, . ~ . - (0 + I(Days - 4.5) | Subject))",
         m = "update(mA, . ~ . - (1 | Subject))"),
    "exactRLRT(m, mA, m0, nsim = 1e5)", notes = "RLRsim's ?exactRLRT example (there with the default nsim = 10000)")

run("dyestuff", list(m = "lmer(Yield ~ 1 + (1 | Batch), data = dyestuff, REML = TRUE)"),
    "exactRLRT(m, nsim = 1e5)", lm_null = "lm(Yield ~ 1, data = dyestuff)",
    notes = "a p-value away from 0 (the sleepstudy tests all give p = 0 at nsim = 1e5)")
run("dyestuff2", list(m = "lmer(Yield ~ 1 + (1 | Batch), data = dyestuff2, REML = TRUE)"),
    "exactRLRT(m, nsim = 1e5)", lm_null = "lm(Yield ~ 1, data = dyestuff2)",
    notes = "boundary fit (batch variance estimated as 0): RLRT = 0; p = fraction of the null sample > 0, not 1")

longsim <- load_bundled("longsim")
datasets$longsim <- fpd(longsim)
run("longsim_x_slope", list(mA = "lmer(y ~ t + (1 | id) + (0 + x | id), data = longsim, REML = TRUE)",
                            m0 = "update(mA, . ~ . - (0 + x | id))", m = "update(mA, . ~ . - (1 | id))"),
    "exactRLRT(m, mA, m0, nsim = 1e5)",
    notes = paste("unbalanced: 150 unequal eigenvalues mu (0.03 to 1) and a p-value away from 0 in the",
                  "several-components path; m alone is a singular fit (lme4 says so), which does not matter"))

writeLines(toJSON(list(
  description = "RLRsim::exactRLRT on sleepstudy (mixedfx issue 12); see make_rlrsim.R",
  RLRsim_version = as.character(packageVersion("RLRsim")), lme4_version = as.character(packageVersion("lme4")),
  R = R.version.string, rng = I(RNGkind()), datasets = datasets, tests = unname(tests)),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "with", length(tests), "tests\n")
