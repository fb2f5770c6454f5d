# lme4's profile intervals for the simulated models of tests/inference/test_profile_boundary.py
# (profiles that meet a boundary: an SD reaching 0, a correlation reaching +-1).  Output committed as JSON.
# Usage:
#   python tests/inference/test_profile_boundary.py /tmp/profile_boundary      # writes <case>.csv, formulas.json
#   Rscript tests/reference/make_profile_boundary.R /tmp/profile_boundary tests/reference/profile_boundary.json
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)
formulas <- fromJSON(file.path(a[1], "formulas.json"))
out <- list()
for (case in names(formulas)) {
  d <- read.csv(file.path(a[1], paste0(case, ".csv")))
  for (v in intersect(c("f", "g", "h"), names(d))) d[[v]] <- factor(d[[v]])
  m <- lmer(as.formula(formulas[[case]]), d, REML = FALSE,
            control = lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))
  pr <- profile(m, signames = FALSE, delta = 1 / 16)   # a finer grid than the default (1/8)
  ci <- confint(pr)
  out[[case]] <- list(formula = formulas[[case]], y_sum = sum(d$y), deviance = deviance(m),
                      lme4 = as.character(packageVersion("lme4")),
                      ci = list(param = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2])))
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null"), a[2])
cat("wrote", a[2], "\n")
