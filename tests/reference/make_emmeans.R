# emmeans on lme4 fits (mixedfx issue 12: estimated marginal means).
# Usage (from the repository root): Rscript tests/reference/make_emmeans.R tests/reference/emmeans.json
# Data: the bundled copies src/mixedfx/datasets/data/{cake,cbpp}.csv.gz (factor levels from
# datasets.json). Deterministic (no random numbers); run with one BLAS thread.
#
# cake: the bundled cake has temp NUMERIC (175, 185, ..., 225; lme4's cake has temp as an ordered
#   factor and a separate numeric `temperature`). Two fits, both REML:
#   cake_num : lmer(angle ~ recipe * temp + (1 | recipe:replicate), cake)          temp numeric
#   cake_fac : lmer(angle ~ recipe * factor(temp) + (1 | recipe:replicate), cake)  temp as a factor
#   (treatment contrasts, the default). With numeric temp emmeans holds temp at its mean (200) for
#   emmeans(m, "recipe"); by = "temp" is then recorded at the six observed temperatures via
#   at = list(temp = c(175, 185, 195, 205, 215, 225)) (emmeans(m, "recipe", by = "temp") alone would
#   give only temp = 200). For cake_fac, emmeans(m, "recipe") averages equally over the six temps
#   and by = "temp" gives the cell means. Each with lmer.df = "satterthwaite" and "kenward-roger"
#   (pbkrtest; K-R also adjusts the covariance of the estimates, so SEs differ between the two).
#   pairs(emmeans(m, "recipe"), adjust = "tukey").
# cbpp: glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial, cbpp)
#   (Laplace, default control). emmeans(g, "period") on the logit (link) scale, and with
#   type = "response" (prob); pairs(emmeans(g, "period"), adjust = "holm") on the link scale (log odds
#   ratios) and pairs(emmeans(g, "period", type = "response"), adjust = "holm") (odds ratios);
#   df = Inf (asymptotic: z tests, normal intervals), WRITTEN AS null in the JSON (JSON has no Inf).
#   Confidence level 0.95 everywhere.
# Recorded: every column of summary() (confint columns for emmeans, test columns for pairs) and the
# adjustment used (emmeans may change "tukey" to "sidak"/"none" where not applicable; the
# annotations printed by summary are stored in "mesg").
suppressPackageStartupMessages({library(lme4); library(emmeans); library(pbkrtest); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_emmeans.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))      # fingerprint()
source(file.path(here, "bundled.R"))          # datadir, manifest, datasets, load_bundled(), fp_data()
datasets <- list()
cake <- fp_data("cake", load_bundled("cake"))
cbpp <- fp_data("cbpp", load_bundled("cbpp"))
stopifnot(is.numeric(cake$temp))
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)

tab <- function(s) {
  d <- as.data.frame(s)
  cols <- lapply(d, function(x) if (is.factor(x) || is.character(x)) I(as.character(x)) else I(as.numeric(x)))
  list(columns = I(names(d)), table = cols,
       mesg = I(as.character(attr(s, "mesg"))),
       adjust = if (!is.null(attr(s, "adjust"))) attr(s, "adjust") else NULL)
}
rec <- list()
add <- function(id, model, call, obj) {
  s <- eval(parse(text = call))
  rec[[id]] <<- c(list(id = id, model = model, call = call), tab(s))
  cat(id, "\n"); print(s)
}

models <- list(
  cake_num = "lmer(angle ~ recipe * temp + (1 | recipe:replicate), data = cake, REML = TRUE)",
  cake_fac = "lmer(angle ~ recipe * factor(temp) + (1 | recipe:replicate), data = cake, REML = TRUE)",
  cbpp = "glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial, data = cbpp)")
fitinfo <- list()
for (nm in names(models)) {
  m <- eval(parse(text = models[[nm]])); assign(nm, m)
  fitinfo[[nm]] <- list(call = models[[nm]], fixef_names = I(names(fixef(m))), fixef = I(unname(fixef(m))),
                        theta = I(unname(getME(m, "theta"))), sigma = sigma(m),
                        deviance_or_REMLcrit = if (isREML(m)) REMLcrit(m) else deviance(m),
                        logLik = as.numeric(logLik(m)))
}
temps <- "at = list(temp = c(175, 185, 195, 205, 215, 225))"
for (nm in c("cake_num", "cake_fac")) for (df in c("satterthwaite", "kenward-roger")) {
  dfs <- if (df == "satterthwaite") "satt" else "kr"
  add(paste(nm, dfs, "recipe", sep = "_"), nm,
      sprintf('summary(emmeans(%s, "recipe", lmer.df = "%s"))', nm, df))
  add(paste(nm, dfs, "recipe_by_temp", sep = "_"), nm,
      if (nm == "cake_num")
        sprintf('summary(emmeans(%s, "recipe", by = "temp", %s, lmer.df = "%s"))', nm, temps, df)
      else sprintf('summary(emmeans(%s, "recipe", by = "temp", lmer.df = "%s"))', nm, df))
  add(paste(nm, dfs, "recipe_pairs_tukey", sep = "_"), nm,
      sprintf('summary(pairs(emmeans(%s, "recipe", lmer.df = "%s"), adjust = "tukey"))', nm, df))
}
add("cbpp_period_link", "cbpp", 'summary(emmeans(cbpp, "period"))')
add("cbpp_period_response", "cbpp", 'summary(emmeans(cbpp, "period", type = "response"))')
add("cbpp_period_pairs_holm_link", "cbpp", 'summary(pairs(emmeans(cbpp, "period"), adjust = "holm"))')
add("cbpp_period_pairs_holm_response", "cbpp",
    'summary(pairs(emmeans(cbpp, "period", type = "response"), adjust = "holm"))')

writeLines(toJSON(list(
  description = "emmeans summaries on lme4 fits (mixedfx issue 12); see make_emmeans.R",
  emmeans_version = as.character(packageVersion("emmeans")), lme4_version = as.character(packageVersion("lme4")),
  pbkrtest_version = as.character(packageVersion("pbkrtest")), lmerTest_version = as.character(packageVersion("lmerTest")),
  R = R.version.string, level = 0.95, datasets = datasets, models = fitinfo, results = unname(rec)),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "with", length(rec), "results\n")
