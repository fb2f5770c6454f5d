# Extra lme4 reference values for mixedfx tests (run once; the JSON output is committed).
# Usage: Rscript tests/reference/make_lme4_extra.R ../shared/data tests/reference/lme4_extra.json
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
datadir <- args[1]; out <- args[2]
rd <- function(name) read.csv(file.path(datadir, paste0(name, ".csv")), stringsAsFactors = FALSE)

sleep <- rd("sleepstudy"); sleep$Subject <- factor(sleep$Subject)
sleep$w <- 1 + sleep$Days / 10
sleep$off <- sleep$Days * 2
sleep$Days2 <- sleep$Days * 2       # aliased with Days
cake <- rd("cake"); cake$recipe <- factor(cake$recipe); cake$replicate <- factor(cake$replicate, levels = as.character(1:15))
pen <- rd("penicillin"); pen$plate <- factor(pen$plate); pen$sample <- factor(pen$sample)
pastes <- rd("pastes"); pastes$batch <- factor(pastes$batch); pastes$cask <- factor(pastes$cask)
inst <- rd("insteval")
for (v in c("s", "d", "dept", "service", "studage", "lectage")) inst[[v]] <- factor(inst[[v]])

fitinfo <- function(id, fit, data, newdata = NULL, re_forms = list()) {
  vc <- as.data.frame(VarCorr(fit)); vc$var1[is.na(vc$var1)] <- ""; vc$var2[is.na(vc$var2)] <- ""
  res <- list(id = id, formula = deparse(formula(fit), width.cutoff = 500L), REML = isREML(fit),
              objective = if (isREML(fit)) REMLcrit(fit) else deviance(fit),
              fixef = as.list(fixef(fit)), fixef_names = names(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
              sigma = sigma(fit), theta = unname(getME(fit, "theta")), theta_names = names(getME(fit, "theta")),
              varcorr = vc, logLik = as.numeric(logLik(fit)), isSingular = isSingular(fit),
              fitted = unname(fitted(fit)))
  if (!is.null(newdata)) {
    res$newdata <- newdata
    res$predict_newdata <- unname(predict(fit, newdata = newdata, allow.new.levels = TRUE))
    res$predict_newdata_marginal <- unname(predict(fit, newdata = newdata, re.form = NA))
    res$predict_re_form <- lapply(re_forms, function(rf) list(re_form = rf,
        values = unname(predict(fit, newdata = newdata, re.form = as.formula(rf), allow.new.levels = TRUE))))
  }
  res
}

models <- list()
models$sleep_weights <- fitinfo("sleep_weights", lmer(Reaction ~ Days + (Days | Subject), sleep, weights = w), sleep)
models$sleep_offset <- fitinfo("sleep_offset", lmer(Reaction ~ Days + offset(off) + (1 | Subject), sleep), sleep,
  newdata = data.frame(Days = c(0, 4, 9), off = c(0, 8, 18), Subject = c("308", "999", "372")))
models$sleep_transforms <- fitinfo("sleep_transforms",
  lmer(Reaction ~ scale(Days) + I(Days^2) + log(Days + 1) + (1 | Subject), sleep, REML = FALSE), sleep,
  newdata = data.frame(Days = c(0, 4.5, 9), Subject = c("308", "999", "372")))
models$sleep_rankdef <- fitinfo("sleep_rankdef", lmer(Reaction ~ Days + Days2 + (1 | Subject), sleep), sleep)
models$sleep_nointercept <- fitinfo("sleep_nointercept", lmer(Reaction ~ 0 + Days + (Days | Subject), sleep), sleep)
models$cake_slopes <- fitinfo("cake_slopes", lmer(angle ~ temp + recipe + (recipe | replicate), cake), cake,
  newdata = data.frame(temp = c(175, 225, 205), recipe = c("A", "C", "B"), replicate = c("1", "15", "99")))
models$cake_factorial_new <- fitinfo("cake_factorial_new", lmer(angle ~ recipe * temp + (1 | recipe:replicate), cake), cake,
  newdata = data.frame(temp = c(175, 225, 205), recipe = c("A", "C", "B"), replicate = c("1", "15", "99")))
models$penicillin_new <- fitinfo("penicillin_new", lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen), pen,
  newdata = data.frame(plate = c("a", "x", "b"), sample = c("A", "F", "Z")),
  re_forms = list("~(1 | plate)", "~(1 | sample)"))
models$pastes_new <- fitinfo("pastes_new", lmer(strength ~ 1 + (1 | batch/cask), pastes), pastes,
  newdata = data.frame(batch = c("A", "J", "Q"), cask = c("a", "c", "a")),
  re_forms = list("~(1 | batch)"))
models$insteval_dept_slopes <- fitinfo("insteval_dept_slopes",
  lmer(y ~ service + (1 | s) + (service | dept), inst, REML = FALSE), inst)
models$insteval_new <- fitinfo("insteval_new", lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept), inst), inst,
  newdata = data.frame(service = c("0", "1", "1"), s = c("1", "2", "99999"), d = c("1002", "99999", "6"),
                       dept = c("15", "2", "5")))
models$insteval_new$fitted <- NULL
models$insteval_dept_slopes$fitted <- NULL
writeLines(toJSON(list(lme4_version = as.character(packageVersion("lme4")), R = R.version.string, models = models),
                  auto_unbox = TRUE, digits = NA, null = "null"), out)
cat("wrote", out, "\n")
