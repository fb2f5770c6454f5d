# Kenward-Roger reference values (lmerTest + pbkrtest) for mixedfx's tests (output committed as JSON).
# Usage: Rscript tests/reference/make_kenward_roger.R ../shared/data tests/reference/kenward_roger.json
suppressPackageStartupMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)
rd <- function(f) read.csv(file.path(a[1], f))
cake <- rd("cake.csv"); cake$recipe <- factor(cake$recipe); cake$replicate <- factor(cake$replicate)
sleep <- rd("sleepstudy.csv"); sleep$Subject <- factor(sleep$Subject)
set.seed(7); sleep$w <- runif(nrow(sleep), 0.5, 2)
sleep$grp <- factor(ifelse(as.integer(sleep$Subject) %% 2 == 0, "a", "b"))
aov_tab <- function(m) { x <- as.data.frame(anova(m, ddf = "Kenward-Roger"))
  list(term = rownames(x), F = x[["F value"]], numdf = x$NumDF, dendf = x$DenDF, p = x[["Pr(>F)"]]) }
coef_tab <- function(m) { x <- as.data.frame(summary(m, ddf = "Kenward-Roger")$coefficients)
  list(term = rownames(x), se = x[["Std. Error"]], df = x$df, t = x[["t value"]], p = x[["Pr(>|t|)"]]) }
mc <- lmer(angle ~ recipe * temp + (1 | recipe:replicate), cake)
ms <- lmer(Reaction ~ Days * grp + (Days | Subject), sleep)
mw <- lmer(Reaction ~ Days + (Days | Subject), sleep, weights = w)
# a contrast with two rows through pbkrtest directly
L <- rbind(c(0, 0, 1, 0), c(0, 0, 0, 1))
kr <- KRmodcomp(ms, L)$test
out <- list(
  cake = list(formula = "angle ~ recipe * temp + (1 | recipe:replicate)", anova = aov_tab(mc), coef = coef_tab(mc)),
  sleep_group = list(formula = "Reaction ~ Days * grp + (Days | Subject)", anova = aov_tab(ms), coef = coef_tab(ms),
                     vcov_adj = as.matrix(vcovAdj(ms)),
                     contrast = list(L = L, F = kr["Ftest", "stat"], ndf = kr["Ftest", "ndf"],
                                     ddf = kr["Ftest", "ddf"], scaling = kr["Ftest", "F.scaling"],
                                     p = kr["Ftest", "p.value"])),
  sleep_weighted = list(formula = "Reaction ~ Days + (Days | Subject)", weights = sleep$w, coef = coef_tab(mw)))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null"), a[2])
cat("wrote", a[2], "\n")
