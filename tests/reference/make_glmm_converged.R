# GLMM reference values with a converged inner loop, for mixedfx's tests (output committed as JSON).
# lme4's default PIRLS tolerance (tolPwrss = 1e-7) leaves its Laplace deviance and the finite-difference
# Hessian behind its standard errors slightly inaccurate (cbpp: SEs move by ~0.5% when it converges).
# Here every glmer fit uses tolPwrss = 1e-12; the Gamma model is also fitted by glmmTMB (exact Laplace,
# dispersion by maximum likelihood), the reference the mixedfx issue names where lme4 is known to be off.
# Usage: Rscript tests/reference/make_glmm_converged.R ../shared/data tests/reference/glmm_converged.json
suppressPackageStartupMessages({library(lme4); library(glmmTMB); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE); datadir <- a[1]; out <- a[2]
rd <- function(name) read.csv(file.path(datadir, paste0(name, ".csv")), stringsAsFactors = FALSE)
cbpp <- rd("cbpp"); cbpp$herd <- factor(cbpp$herd); cbpp$period <- factor(cbpp$period)
grouse <- rd("grouseticks")
for (v in c("INDEX", "BROOD", "LOCATION", "YEAR")) grouse[[v]] <- factor(grouse[[v]])
verb <- rd("verbagg")
for (v in c("Gender", "btype", "situ", "id", "item", "r2")) verb[[v]] <- factor(verb[[v]])
verb$Gender <- factor(verb$Gender, levels = c("F", "M")); verb$r2 <- factor(verb$r2, levels = c("N", "Y"))
verb$btype <- factor(verb$btype, levels = c("curse", "scold", "shout"))
verb$situ <- factor(verb$situ, levels = c("other", "self"))
sleep <- rd("sleepstudy"); sleep$Subject <- factor(sleep$Subject)
ctl <- glmerControl(tolPwrss = 1e-12)
info <- function(fit) list(theta = unname(getME(fit, "theta")), theta_names = names(getME(fit, "theta")),
  fixef = as.list(fixef(fit)), se = as.list(sqrt(diag(as.matrix(vcov(fit))))),
  minus2loglik = -2 * as.numeric(logLik(fit)), deviance = deviance(fit), sigma = sigma(fit),
  hatvalues = unname(suppressWarnings(hatvalues(fit))))
res <- list()
res$cbpp_binomial <- info(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial, control = ctl))
res$cbpp_binomial_agq <- info(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial,
                                    nAGQ = 25, control = ctl))
res$grouseticks_poisson <- info(glmer(TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),
                                      grouse, poisson, control = ctl))
res$verbagg_binomial <- info(glmer(r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), verb, binomial,
                                   control = ctl))
res$sleep_gamma_log <- info(glmer(Reaction ~ Days + (1 | Subject), sleep, Gamma(link = "log"), control = ctl))
tmb <- glmmTMB(Reaction ~ Days + (1 | Subject), sleep, family = Gamma(link = "log"))
res$sleep_gamma_log_glmmTMB <- list(fixef = as.list(fixef(tmb)$cond),
  se = as.list(sqrt(diag(vcov(tmb)$cond))), minus2loglik = -2 * as.numeric(logLik(tmb)),
  sd_subject = attr(VarCorr(tmb)$cond$Subject, "stddev")[[1]], sigma = sigma(tmb))
writeLines(toJSON(list(lme4 = as.character(packageVersion("lme4")), glmmTMB = as.character(packageVersion("glmmTMB")),
                       models = res), auto_unbox = TRUE, digits = NA), out)
cat("wrote", out, "\n")
