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
#   (Laplace, control = glmerControl(tolPwrss = 1e-12) as make_glmm_converged.R: lme4's default
#   PIRLS tolerance leaves its GLMM estimates ~4e-4 (relative) from the optimum). emmeans(g, "period") on the logit (link) scale, and with
#   type = "response" (prob); pairs(emmeans(g, "period"), adjust = "holm") on the link scale (log odds
#   ratios) and pairs(emmeans(g, "period", type = "response"), adjust = "holm") (odds ratios);
#   df = Inf (asymptotic: z tests, normal intervals), WRITTEN AS null in the JSON (JSON has no Inf).
#   Confidence level 0.95 everywhere.
# owls (unbalanced FoodTreatment x SexParent: 123/197/122/157 rows):
#   owls_lmm : lmer(ArrivalTime ~ FoodTreatment * SexParent + BroodSize + (1 | Nest), owls, REML = TRUE)
#     (BroodSize numeric, held at its mean); weights = "proportional" and "equal", a two-factor spec
#     c("FoodTreatment", "SexParent") with pairs (bonferroni) and confint.
#   owls_pois: glmer(SiblingNegotiation ~ FoodTreatment * SexParent + (1 | Nest), family = poisson, owls)
#     type = "response" (rate), pairs as ratios, by = "SexParent", weights = "proportional"
#     (tolPwrss = 1e-12 as cbpp), with glmmTMB's exact covariance of the fixed effects (vcov. = Vpois;
#     lme4's finite-difference one is ~1.5e-3 off for this model).
#   owls_nb  : glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + (1 | Nest), family = nbinom2, owls)
#     (glmmTMB 1.1.5; conditional model) type = "response" and its pairs.
# Further cake_fac / cake_num cases: by = "temp" with pairs (tukey default, bonferroni, sidak, KR),
#   at = for the covariate (averaged over two values; one value), at = restricting a factor's levels,
#   custom contrasts (a list; adjust = "tukey" is changed to "sidak" by emmeans), trt.vs.ctrl (dunnettx
#   default; holm), revpairwise, poly over temp, confint of pairs (tukey-adjusted intervals) and of the
#   means with adjust = "tukey" (changed to sidak), level = 0.9, lmer.df = "asymptotic".
# R messages printed while summarizing (emmeans' "Note: adjust = ... was changed ...") go to "notes".
# Recorded: every column of summary() (confint columns for emmeans, test columns for pairs) and the
# adjustment used (emmeans may change "tukey" to "sidak"/"none" where not applicable; the
# annotations printed by summary are stored in "mesg").
suppressPackageStartupMessages({library(lme4); library(emmeans); library(pbkrtest); library(glmmTMB); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_emmeans.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))      # fingerprint()
source(file.path(here, "bundled.R"))          # datadir, manifest, datasets, load_bundled(), fp_data()
datasets <- list()
owls <- fp_data("owls", load_bundled("owls"))
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
  notes <- character()
  s <- withCallingHandlers(eval(parse(text = call)), message = function(m) {
    notes <<- c(notes, sub("\n$", "", conditionMessage(m))); invokeRestart("muffleMessage")})
  rec[[id]] <<- c(list(id = id, model = model, call = call), tab(s), list(notes = I(notes)))
  cat(id, "\n"); print(s)
}

ctl <- glmerControl(tolPwrss = 1e-12)   # converged PIRLS (lme4's default 1e-7 leaves the GLMM fits ~1e-4 off)
models <- list(
  cake_num = "lmer(angle ~ recipe * temp + (1 | recipe:replicate), data = cake, REML = TRUE)",
  cake_fac = "lmer(angle ~ recipe * factor(temp) + (1 | recipe:replicate), data = cake, REML = TRUE)",
  cbpp = "glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial, data = cbpp, control = ctl)",
  owls_lmm = "lmer(ArrivalTime ~ FoodTreatment * SexParent + BroodSize + (1 | Nest), data = owls, REML = TRUE)",
  owls_pois = "glmer(SiblingNegotiation ~ FoodTreatment * SexParent + (1 | Nest), family = poisson, data = owls, control = ctl)",
  owls_nb = "glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + (1 | Nest), family = nbinom2, data = owls)")
fitinfo <- list()
for (nm in names(models)) {
  m <- eval(parse(text = models[[nm]])); assign(nm, m)
  fitinfo[[nm]] <- if (inherits(m, "glmmTMB"))
    list(call = models[[nm]], fixef_names = I(names(fixef(m)$cond)), fixef = I(unname(fixef(m)$cond)),
         sigma = sigma(m), logLik = as.numeric(logLik(m)))
  else list(call = models[[nm]], fixef_names = I(names(fixef(m))), fixef = I(unname(fixef(m))),
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

# ---- further cases
# owls_pois: lme4's finite-difference Hessian gives SEs ~1.5e-3 (relative) off the exact ones here
# (glmmTMB's, from automatic differentiation, which mixedfx matches to 1e-6); its emmeans use glmmTMB's
# covariance of the same fixed effects (vcov. = Vpois), everything else from the glmer fit.
Vpois <- vcov(glmmTMB(SiblingNegotiation ~ FoodTreatment * SexParent + (1 | Nest), family = poisson,
                      data = owls))$cond
ss <- function(x) sprintf('summary(%s)', x)
add("cake_fac_satt_recipe_by_temp_pairs", "cake_fac",
    ss('pairs(emmeans(cake_fac, "recipe", by = "temp", lmer.df = "satterthwaite"))'))
add("cake_fac_kr_recipe_by_temp_pairs", "cake_fac",
    ss('pairs(emmeans(cake_fac, "recipe", by = "temp", lmer.df = "kenward-roger"))'))
add("cake_fac_satt_recipe_by_temp_pairs_bonferroni", "cake_fac",
    ss('pairs(emmeans(cake_fac, "recipe", by = "temp", lmer.df = "satterthwaite"), adjust = "bonferroni")'))
add("cake_fac_satt_recipe_pairs_sidak", "cake_fac",
    ss('pairs(emmeans(cake_fac, "recipe", lmer.df = "satterthwaite"), adjust = "sidak")'))
add("cake_fac_satt_recipe_revpairs", "cake_fac",
    ss('contrast(emmeans(cake_fac, "recipe", lmer.df = "satterthwaite"), "revpairwise")'))
add("cake_fac_satt_recipe_custom_tukey", "cake_fac",
    ss('contrast(emmeans(cake_fac, "recipe", lmer.df = "satterthwaite"), list(AvsBC = c(1, -0.5, -0.5), BvsC = c(0, 1, -1)), adjust = "tukey")'))
add("cake_fac_satt_recipe_custom_none", "cake_fac",
    ss('contrast(emmeans(cake_fac, "recipe", lmer.df = "satterthwaite"), list(AvsBC = c(1, -0.5, -0.5), BvsC = c(0, 1, -1)))'))
add("cake_fac_satt_recipe_trt_vs_ctrl", "cake_fac",
    ss('contrast(emmeans(cake_fac, "recipe", lmer.df = "satterthwaite"), "trt.vs.ctrl")'))
add("cake_fac_satt_recipe_trt_vs_ctrl_holm", "cake_fac",
    ss('contrast(emmeans(cake_fac, "recipe", lmer.df = "satterthwaite"), "trt.vs.ctrl", adjust = "holm")'))
add("cake_fac_satt_temp_poly", "cake_fac",
    ss('contrast(emmeans(cake_fac, "temp", lmer.df = "satterthwaite"), "poly")'))
add("cake_fac_satt_temp_pairs_tukey", "cake_fac",
    ss('pairs(emmeans(cake_fac, "temp", lmer.df = "satterthwaite"))'))
add("cake_fac_satt_recipe_pairs_confint", "cake_fac",
    'confint(pairs(emmeans(cake_fac, "recipe", lmer.df = "satterthwaite")))')
add("cake_fac_kr_recipe_by_temp_pairs_confint", "cake_fac",
    'confint(pairs(emmeans(cake_fac, "recipe", by = "temp", lmer.df = "kenward-roger")))')
add("cake_fac_satt_recipe_confint_tukey", "cake_fac",
    'confint(emmeans(cake_fac, "recipe", lmer.df = "satterthwaite"), adjust = "tukey")')
add("cake_fac_satt_recipe_confint_bonferroni_90", "cake_fac",
    'confint(emmeans(cake_fac, "recipe", lmer.df = "satterthwaite"), adjust = "bonferroni", level = 0.9)')
add("cake_fac_satt_recipe_at_temp", "cake_fac",
    ss('emmeans(cake_fac, "recipe", at = list(temp = c(175, 225)), lmer.df = "satterthwaite")'))
add("cake_fac_asymp_recipe", "cake_fac", ss('emmeans(cake_fac, "recipe", lmer.df = "asymptotic")'))
add("cake_fac_asymp_recipe_pairs", "cake_fac", ss('pairs(emmeans(cake_fac, "recipe", lmer.df = "asymptotic"))'))
add("cake_num_satt_recipe_at_two", "cake_num",
    ss('emmeans(cake_num, "recipe", at = list(temp = c(180, 220)), lmer.df = "satterthwaite")'))
add("cake_num_satt_recipe_at_one", "cake_num",
    ss('emmeans(cake_num, "recipe", at = list(temp = 190), lmer.df = "satterthwaite")'))
add("cake_num_kr_recipe_at_one_pairs", "cake_num",
    ss('pairs(emmeans(cake_num, "recipe", at = list(temp = 190), lmer.df = "kenward-roger"))'))
add("owls_lmm_satt_food_equal", "owls_lmm", ss('emmeans(owls_lmm, "FoodTreatment", lmer.df = "satterthwaite")'))
add("owls_lmm_satt_food_prop", "owls_lmm",
    ss('emmeans(owls_lmm, "FoodTreatment", weights = "proportional", lmer.df = "satterthwaite")'))
add("owls_lmm_kr_food_prop", "owls_lmm",
    ss('emmeans(owls_lmm, "FoodTreatment", weights = "proportional", lmer.df = "kenward-roger")'))
add("owls_lmm_satt_sex_prop_pairs", "owls_lmm",
    ss('pairs(emmeans(owls_lmm, "SexParent", weights = "proportional", lmer.df = "satterthwaite"))'))
add("owls_lmm_satt_two", "owls_lmm",
    ss('emmeans(owls_lmm, c("FoodTreatment", "SexParent"), lmer.df = "satterthwaite")'))
add("owls_lmm_satt_two_formula", "owls_lmm",
    ss('emmeans(owls_lmm, ~ FoodTreatment * SexParent, lmer.df = "satterthwaite")'))
add("owls_lmm_satt_two_pairs_bonferroni", "owls_lmm",
    ss('pairs(emmeans(owls_lmm, c("FoodTreatment", "SexParent"), lmer.df = "satterthwaite"), adjust = "bonferroni")'))
add("owls_lmm_satt_two_pairs_tukey", "owls_lmm",
    ss('pairs(emmeans(owls_lmm, c("FoodTreatment", "SexParent"), lmer.df = "satterthwaite"))'))
add("owls_lmm_satt_food_by_sex_pairs", "owls_lmm",
    ss('pairs(emmeans(owls_lmm, "FoodTreatment", by = "SexParent", lmer.df = "satterthwaite"))'))
add("owls_pois_food_response", "owls_pois", ss('emmeans(owls_pois, "FoodTreatment", vcov. = Vpois, type = "response")'))
add("owls_pois_food_link", "owls_pois", ss('emmeans(owls_pois, "FoodTreatment", vcov. = Vpois)'))
add("owls_pois_food_prop_response", "owls_pois",
    ss('emmeans(owls_pois, "FoodTreatment", vcov. = Vpois, weights = "proportional", type = "response")'))
add("owls_pois_food_pairs_response", "owls_pois",
    ss('pairs(emmeans(owls_pois, "FoodTreatment", vcov. = Vpois, type = "response"))'))
add("owls_pois_food_pairs_link", "owls_pois", ss('pairs(emmeans(owls_pois, "FoodTreatment", vcov. = Vpois))'))
add("owls_pois_food_by_sex_pairs_response", "owls_pois",
    ss('pairs(emmeans(owls_pois, "FoodTreatment", vcov. = Vpois, by = "SexParent", type = "response"))'))
add("owls_pois_two_pairs_response_sidak", "owls_pois",
    ss('pairs(emmeans(owls_pois, c("FoodTreatment", "SexParent"), vcov. = Vpois, type = "response"), adjust = "sidak")'))
add("owls_pois_two_pairs_response_confint", "owls_pois",
    'confint(pairs(emmeans(owls_pois, c("FoodTreatment", "SexParent"), vcov. = Vpois, type = "response")))')
add("cbpp_period_trt_vs_ctrl_response", "cbpp",
    ss('contrast(emmeans(cbpp, "period", type = "response"), "trt.vs.ctrl", adjust = "bonferroni")'))
add("cbpp_period_pairs_response_confint", "cbpp",
    'confint(pairs(emmeans(cbpp, "period", type = "response")), adjust = "holm")')
add("owls_nb_food_response", "owls_nb", ss('emmeans(owls_nb, "FoodTreatment", type = "response")'))
add("owls_nb_food_pairs_response", "owls_nb", ss('pairs(emmeans(owls_nb, "FoodTreatment", type = "response"))'))

writeLines(toJSON(list(
  description = "emmeans summaries on lme4 fits (mixedfx issue 12); see make_emmeans.R",
  emmeans_version = as.character(packageVersion("emmeans")), lme4_version = as.character(packageVersion("lme4")),
  pbkrtest_version = as.character(packageVersion("pbkrtest")), lmerTest_version = as.character(packageVersion("lmerTest")),
  R = R.version.string, level = 0.95, datasets = datasets, models = fitinfo, results = unname(rec)),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "with", length(rec), "results\n")
