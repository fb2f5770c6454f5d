# The null model behind performance's grouseticks ICC / R2 (output committed as JSON).
# insight builds it by update(model, ~ 1 + random terms); lme4's default optimizer stops early on it
# (max|grad| = 0.08), and performance's lognormal sigma2_e uses that intercept.
# Usage: Rscript tests/reference/make_grouse_null.R ../shared/data tests/reference/grouse_null.json
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)
g <- read.csv(file.path(a[1], "grouseticks.csv"))
for (v in c("INDEX", "BROOD", "LOCATION", "YEAR")) g[[v]] <- factor(g[[v]])
m <- glmer(TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION), g, poisson)
m0 <- suppressWarnings(update(m, . ~ 1 + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)))
out <- list(fixef = unname(fixef(m0)), theta = unname(getME(m0, "theta")), theta_names = names(getME(m0, "theta")),
            minus2loglik = -2 * as.numeric(logLik(m0)))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA), a[2])
cat("wrote", a[2], "\n")
