# Case-deletion influence of a binomial GLMM from lme4 (influence.merMod; output committed as JSON).
# Usage: Rscript tests/reference/make_glmm_influence.R src/mixedfx/datasets/data/cbpp.csv.gz tests/reference/glmm_influence.json
# lme4 refits the model without each herd (or row) from the full-data theta and fixed effects,
# with its own optimizer (Nelder-Mead + bobyqa, maxfun = 1000) and default PIRLS tolerance.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)
cbpp <- read.csv(gzfile(a[1])); cbpp$herd <- factor(cbpp$herd); cbpp$period <- factor(cbpp$period)
form <- cbind(incidence, size - incidence) ~ period + (1 | herd)
one <- function(nagq, groups) {
  m <- eval(bquote(glmer(form, data = cbpp, family = binomial, nAGQ = .(nagq))))
  inf <- if (is.null(groups)) influence(m) else influence(m, groups = groups)
  fe <- inf[[2]]; vc <- inf[[4]]
  list(nagq = nagq, groups = if (is.null(groups)) "obs" else groups,
       deleted = as.character(rownames(fe)),
       fixef = as.list(fixef(m)), theta = unname(getME(m, "theta")),
       vcov = unname(as.matrix(vcov(m))),
       fixef_deleted = lapply(seq_len(ncol(fe)), function(j) unname(fe[, j])),
       fixef_names = colnames(fe),
       var_cov_comps = as.list(inf[[3]]),
       var_cov_comps_deleted = lapply(seq_len(ncol(vc)), function(j) unname(vc[, j])),
       var_cov_names = colnames(vc),
       se_deleted = lapply(inf[[6]], function(v) unname(sqrt(diag(as.matrix(v))))),
       cooks_distance = unname(cooks.distance(inf)),
       dfbetas = lapply(seq_len(ncol(fe)), function(j) unname(dfbetas(inf)[, j])),
       converged = unname(inf$converged))
}
# the same deletions refitted with tight tolerances (influence.merMod replaces the model's control
# by its own, so PIRLS and the optimizer stop at lme4's defaults): Cook's distance and dfbetas are
# differences of estimates, and these pin them down to ~1e-6
ctl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
tight <- function(nagq) {
  m <- glmer(form, data = cbpp, family = binomial, nAGQ = nagq, control = ctl)
  herds <- levels(cbpp$herd)
  fits <- lapply(herds, function(h) glmer(form, data = cbpp[cbpp$herd != h, ], family = binomial, nAGQ = nagq,
                                          control = ctl, start = list(theta = getME(m, "theta"), fixef = fixef(m))))
  list(nagq = nagq, deleted = herds, fixef = unname(fixef(m)), theta = unname(getME(m, "theta")),
       vcov = unname(as.matrix(vcov(m))), minus2loglik = -2 * as.numeric(logLik(m)),
       fixef_deleted = lapply(fits, function(f) unname(fixef(f))),
       theta_deleted = sapply(fits, function(f) unname(getME(f, "theta"))),
       se_deleted = lapply(fits, function(f) unname(sqrt(diag(as.matrix(vcov(f)))))),
       minus2loglik_deleted = sapply(fits, function(f) -2 * as.numeric(logLik(f))))
}
out <- list(cbpp_herd = one(1, "herd"), cbpp_obs = one(1, NULL), cbpp_herd_agq = one(10, "herd"),
            cbpp_herd_tight = tight(1), cbpp_herd_agq_tight = tight(10),
            formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null"), a[2])
cat("wrote", a[2], "\n")
