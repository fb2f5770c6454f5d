# Reference values for mixedfx's model comparison tests (output committed as JSON).
# Usage: Rscript tests/reference/make_inference.R ../shared/data tests/reference/inference.json
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)
sleep <- read.csv(file.path(a[1], "sleepstudy.csv")); sleep$Subject <- factor(sleep$Subject)
m0 <- lmer(Reaction ~ Days + (1 | Subject), sleep)
m1 <- lmer(Reaction ~ Days + (Days || Subject), sleep)
m2 <- lmer(Reaction ~ Days + (Days | Subject), sleep)
m3 <- lmer(Reaction ~ 1 + (Days | Subject), sleep)
tab <- function(x) { x <- as.data.frame(x); list(model = rownames(x), npar = x$npar, AIC = x$AIC, BIC = x$BIC,
  logLik = x$logLik, deviance = x$deviance, Chisq = x$Chisq, Df = x$Df, p = x[["Pr(>Chisq)"]]) }
out <- list(
  intercept_vs_slopes = tab(anova(m0, m2)),
  three_models = tab(anova(m0, m1, m2)),
  fixed_effect = tab(anova(m3, m2)))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null"), a[2])
cat("wrote", a[2], "\n")
