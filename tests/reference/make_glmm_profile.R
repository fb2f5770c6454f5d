# Profile confidence intervals for GLMMs from lme4 (output committed as JSON).
# Usage: Rscript tests/reference/make_glmm_profile.R ../shared/data tests/reference/glmm_profile.json
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)
cbpp <- read.csv(file.path(a[1], "cbpp.csv")); cbpp$herd <- factor(cbpp$herd); cbpp$period <- factor(cbpp$period)
ctl <- glmerControl(tolPwrss = 1e-10)
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial, control = ctl)
ci <- confint(m, method = "profile", oldNames = FALSE)
m2 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial, control = ctl, nAGQ = 10)
ci2 <- confint(m2, method = "profile", oldNames = FALSE)
tab <- function(ci) list(param = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
out <- list(cbpp = list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", nagq = 1, ci = tab(ci)),
            cbpp_agq = list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", nagq = 10, ci = tab(ci2)))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null"), a[2])
cat("wrote", a[2], "\n")
