# lme4 reference results for mixedfx's tests: one JSON file per model (the 15 core models).
# The committed output is tests/reference/lme4/*.json (made with R 4.2.2, lme4 1.1-31, lmerTest 3.1-3,
# pbkrtest 0.5.2, performance, glmmTMB 1.1.x; see tests/reference/lme4/README.md for the fields).
#
# Usage (from the repository root; OUTDIR must be given, and the committed folder is only
# overwritten with --force):
#   Rscript tests/reference/make_lme4_core.R OUTDIR [--data DATADIR] [--only id1,id2] [--force]
# DATADIR defaults to the package's bundled datasets, src/mixedfx/datasets/data (*.csv.gz plus
# datasets.json with R's factor levels), so the script needs nothing outside the repository.
# Needs: lme4, lmerTest, pbkrtest, performance, glmmTMB, jsonlite
#   (Debian: apt-get install r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-performance r-cran-glmmtmb).
# Compare a fresh run with the committed JSON: python tests/reference/compare_lme4_core.py OUTDIR
suppressPackageStartupMessages({
  library(lme4); library(lmerTest); library(pbkrtest); library(performance); library(glmmTMB); library(jsonlite)
})

# ---- arguments ----------------------------------------------------------------------------------
argv <- commandArgs(trailingOnly = TRUE)
flag <- function(name) { i <- match(name, argv); if (is.na(i)) return(NULL); v <- argv[i + 1]; argv <<- argv[-c(i, i + 1)]; v }
force <- "--force" %in% argv; argv <- setdiff(argv, "--force")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
root <- normalizePath(file.path(dirname(normalizePath(script)), "..", ".."))
datadir <- flag("--data"); if (is.null(datadir)) datadir <- file.path(root, "src", "mixedfx", "datasets", "data")
only <- flag("--only"); only <- if (is.null(only)) NULL else strsplit(only, ",")[[1]]
if (length(argv) != 1) stop("usage: Rscript tests/reference/make_lme4_core.R OUTDIR [--data DATADIR] [--only ids] [--force]")
outdir <- argv[1]
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)
committed <- normalizePath(file.path(root, "tests", "reference", "lme4"), mustWork = FALSE)
if (normalizePath(outdir) == committed && !force)
  stop("OUTDIR is the committed reference folder ", committed, "; write elsewhere, or add --force to replace it")

# ---- data: the bundled CSVs, factor columns with R's levels from datasets.json ------------------
meta <- fromJSON(file.path(datadir, "datasets.json"), simplifyVector = TRUE)
load_data <- function(name) {
  d <- read.csv(gzfile(file.path(datadir, paste0(name, ".csv.gz"))), colClasses = "character",
                check.names = FALSE, na.strings = character(0))
  levs <- meta[[name]]$factors
  for (col in names(d)) {
    if (col %in% names(levs)) {
      d[[col]] <- factor(d[[col]], levels = levs[[col]])
      if (anyNA(d[[col]])) stop(name, ".", col, ": values outside datasets.json's levels")
    } else {
      d[[col]] <- as.numeric(d[[col]])
      if (anyNA(d[[col]])) stop(name, ".", col, ": non-numeric values")
    }
  }
  d
}
# The bundled copies are lme4's datasets: say so if a column differs (values or level order).
lme4_name <- c(cake = "cake", cbpp = "cbpp", dyestuff = "Dyestuff", dyestuff2 = "Dyestuff2",
               grouseticks = "grouseticks", insteval = "InstEval", pastes = "Pastes",
               penicillin = "Penicillin", sleepstudy = "sleepstudy", verbagg = "VerbAgg")
same_as_lme4 <- function(name, d) {
  r <- get(lme4_name[[name]], envir = asNamespace("lme4"))
  ok <- nrow(r) == nrow(d) && all(names(d) %in% names(r))
  if (ok) for (col in names(d)) {
    a <- d[[col]]; b <- r[[col]]
    ok <- ok && if (is.factor(a)) identical(levels(a), levels(b)) && identical(as.character(a), as.character(b))
                else isTRUE(all.equal(as.numeric(a), as.numeric(b), tolerance = 0))
  }
  if (!ok) warning("bundled ", name, " differs from lme4's ", lme4_name[[name]])
  ok
}

# ---- the models ---------------------------------------------------------------------------------
newdata_sleep <- data.frame(Days = c(0, 5, 9, 3), Subject = c("308", "309", "999", "372"))
spec <- function(id, data, formula, fun = "lmer", args = list(), profile = FALSE, newdata = NULL,
                 glmmTMB = FALSE)
  list(id = id, data = data, formula = formula, fun = fun, args = args, profile = profile,
       newdata = newdata, glmmTMB = glmmTMB)
MODELS <- list(
  spec("sleep_intercept", "sleepstudy", "Reaction ~ Days + (1 | Subject)", newdata = newdata_sleep),
  spec("sleep_slopes_reml", "sleepstudy", "Reaction ~ Days + (Days | Subject)", profile = TRUE,
       newdata = newdata_sleep),
  spec("sleep_slopes_ml", "sleepstudy", "Reaction ~ Days + (Days | Subject)", args = list(REML = FALSE),
       newdata = newdata_sleep),
  spec("sleep_uncorrelated", "sleepstudy", "Reaction ~ Days + (Days || Subject)"),
  spec("dyestuff", "dyestuff", "Yield ~ 1 + (1 | Batch)", profile = TRUE),
  spec("dyestuff2_singular", "dyestuff2", "Yield ~ 1 + (1 | Batch)"),
  spec("penicillin_crossed", "penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", profile = TRUE),
  spec("pastes_nested", "pastes", "strength ~ 1 + (1 | batch/cask)"),
  spec("cake_factorial", "cake", "angle ~ recipe * temp + (1 | recipe:replicate)"),
  spec("insteval_crossed", "insteval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)"),
  spec("cbpp_binomial", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "glmer",
       list(family = "binomial")),
  spec("cbpp_binomial_agq", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "glmer",
       list(family = "binomial", nAGQ = 25)),
  spec("grouseticks_poisson", "grouseticks",
       "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "glmer",
       list(family = "poisson")),
  spec("verbagg_binomial", "verbagg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "glmer",
       list(family = "binomial")),
  spec("sleep_gamma_log", "sleepstudy", "Reaction ~ Days + (1 | Subject)", "glmer",
       list(family = "Gamma log"), glmmTMB = TRUE)
)
FAMILIES <- list(binomial = binomial(), poisson = poisson(), "Gamma log" = Gamma(link = "log"))
PER_OBS_MAX <- 20000     # per-observation vectors (and Kenward-Roger, which forms n x n matrices) below this

# ---- helpers ------------------------------------------------------------------------------------
quiet <- function(expr) suppressWarnings(suppressMessages(expr))
try_or_null <- function(expr) tryCatch(quiet(expr), error = function(e) { message("  (left out: ", conditionMessage(e), ")"); NULL })
varcorr_df <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  vc$var1[is.na(vc$var1)] <- ""; vc$var2[is.na(vc$var2)] <- ""
  vc
}
coef_test <- function(fit, ddf) {
  cf <- summary(as_lmerModLmerTest(fit), ddf = ddf)$coefficients
  if (ddf == "Satterthwaite")
    list(term = I(rownames(cf)), df = I(unname(cf[, "df"])), t = I(unname(cf[, "t value"])),
         p = I(unname(cf[, "Pr(>|t|)"])))
  else
    list(term = I(rownames(cf)), df = I(unname(cf[, "df"])), se = I(unname(cf[, "Std. Error"])),
         p = I(unname(cf[, "Pr(>|t|)"])))
}
anova3 <- function(fit) {
  a <- anova(as_lmerModLmerTest(fit), type = 3, ddf = "Satterthwaite")
  list(term = I(rownames(a)), F = I(unname(a[["F value"]])), numdf = I(unname(a[["NumDF"]])),
       dendf = I(unname(a[["DenDF"]])), p = I(unname(a[["Pr(>F)"]])))
}
ci_list <- function(ci) {
  ci <- ci[!is.na(ci[, 1]), , drop = FALSE]
  list(param = I(rownames(ci)), lower = I(unname(ci[, 1])), upper = I(unname(ci[, 2])))
}
glmmtmb_info <- function(m, data) {
  fit <- glmmTMB(as.formula(m$formula), data, family = FAMILIES[[m$args$family]])
  sds <- attr(VarCorr(fit)$cond[[1]], "stddev")
  grp <- names(VarCorr(fit)$cond)[1]
  vc <- data.frame(grp = c(rep(grp, length(sds)), "Residual"), var1 = c(names(sds), ""), var2 = "",
                   sdcor = c(unname(sds), sigma(fit)))
  re <- as.data.frame(ranef(fit, condVar = TRUE)); rownames(re) <- NULL
  list(logLik = as.numeric(logLik(fit)), fixef = as.list(fixef(fit)$cond),
       se = as.list(sqrt(diag(vcov(fit)$cond))), varcorr = vc, sigma = sigma(fit),
       source = paste0("glmmTMB ", sub("[.][0-9]+$", ".x", format(packageVersion("glmmTMB"))),
                       ", family Gamma(log), ML by Laplace"),
       ranef = re[, c("grpvar", "term", "grp", "condval", "condsd")])
}

reference <- function(m) {
  data <- load_data(m$data)
  same_as_lme4(m$data, data)
  f <- as.formula(m$formula)
  if (m$fun == "lmer") {
    fit <- lmer(f, data, REML = !identical(m$args$REML, FALSE))
  } else {
    fit <- glmer(f, data, family = FAMILIES[[m$args$family]],
                 nAGQ = if (is.null(m$args$nAGQ)) 1L else m$args$nAGQ)
  }
  lmm <- m$fun == "lmer"
  reml <- lmm && isREML(fit)
  ll <- logLik(fit)
  isfac <- vapply(data, is.factor, logical(1))
  res <- list(id = m$id, data = m$data, formula = m$formula, fun = m$fun, args = m$args,
              lme4_version = as.character(packageVersion("lme4")),
              factor_levels = lapply(data[isfac], function(x) I(levels(x))),
              nobs = nobs(fit), ngrps = as.list(ngrps(fit)),
              fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
              vcov = unname(as.matrix(vcov(fit))), fixef_names = I(names(fixef(fit))),
              theta = I(unname(getME(fit, "theta"))), theta_names = I(names(getME(fit, "theta"))),
              sigma = sigma(fit), varcorr = varcorr_df(fit),
              logLik = as.numeric(ll), df = attr(ll, "df"), AIC = AIC(fit), BIC = BIC(fit),
              deviance = if (reml) NULL else deviance(fit),
              REMLcrit = if (reml) REMLcrit(fit) else NULL,
              objective = if (reml) REMLcrit(fit) else deviance(fit),
              isSingular = isSingular(fit),
              ranef = as.data.frame(ranef(fit, condVar = TRUE)))
  if (!lmm) {
    res$family <- family(fit)$family; res$link <- family(fit)$link
    res$laplace_deviance <- -2 * as.numeric(ll)
  }
  n <- nobs(fit)
  if (n < PER_OBS_MAX) {
    res$fitted <- I(unname(fitted(fit)))
    res$resid_response <- I(unname(residuals(fit, type = "response")))
    res$resid_pearson <- I(unname(residuals(fit, type = "pearson")))
    res$predict_marginal_link <- I(unname(predict(fit, re.form = NA)))
    res$hatvalues <- I(unname(quiet(hatvalues(fit))))
  }
  if (lmm) {
    res$satterthwaite <- coef_test(fit, "Satterthwaite")
    # pbkrtest: REML fits only; it forms n x n matrices; a singular fit has no Kenward-Roger correction
    if (reml && n < PER_OBS_MAX && !isSingular(fit)) res$kenward_roger <- try_or_null(coef_test(fit, "Kenward-Roger"))
    res$anova_type3 <- anova3(fit)
  }
  icc <- try_or_null(performance::icc(fit))      # NA, not a table, where it cannot (singular fits)
  if (is.list(icc)) res$icc <- list(adjusted = icc$ICC_adjusted, conditional = icc$ICC_conditional)
  r2 <- try_or_null(performance::r2_nakagawa(fit))
  if (!is.null(r2)) res$r2_nakagawa <- list(marginal = unname(r2$R2_marginal), conditional = unname(r2$R2_conditional))
  if (m$profile) res$confint_profile <- ci_list(quiet(confint(fit, method = "profile", oldNames = FALSE)))
  res$confint_wald <- ci_list(quiet(confint(fit, method = "Wald")))
  if (!is.null(m$newdata)) {
    res$newdata <- m$newdata
    res$predict_newdata <- I(unname(predict(fit, newdata = m$newdata, allow.new.levels = TRUE)))
    res$predict_newdata_marginal <- I(unname(predict(fit, newdata = m$newdata, re.form = NA)))
  }
  if (m$glmmTMB) res$glmmTMB <- glmmtmb_info(m, data)
  res
}

cat("R", R.version$major, ".", R.version$minor, "; lme4", format(packageVersion("lme4")),
    "; lmerTest", format(packageVersion("lmerTest")), "; pbkrtest", format(packageVersion("pbkrtest")),
    "; performance", format(packageVersion("performance")), "; glmmTMB", format(packageVersion("glmmTMB")), "\n", sep = " ")
for (m in MODELS) {
  if (!is.null(only) && !(m$id %in% only)) next
  t0 <- proc.time()[["elapsed"]]
  res <- reference(m)
  path <- file.path(outdir, paste0(m$id, ".json"))
  writeLines(toJSON(res, auto_unbox = TRUE, pretty = TRUE, digits = NA, null = "null", na = "null"), path)
  cat(sprintf("wrote %s (%.1f s)\n", path, proc.time()[["elapsed"]] - t0))
}
