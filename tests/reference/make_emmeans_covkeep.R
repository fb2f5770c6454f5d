# emmeans' cov.keep = "2" (mixedfx issue 12 review): a numeric covariate with at most two distinct
# values (a 0/1 indicator) is a factor of the reference grid (averaged over its two values, usable in
# specs/by), not held at its mean.
# Usage (from the repository root):
#   Rscript tests/reference/make_emmeans_covkeep.R tests/reference/emmeans_covkeep.json
# Data: the bundled seizure (src/mixedfx/datasets/data); trt and x are 0/1 numeric, age numeric.
# Model: lmer(y ~ trt * x + age + (1 | id), seizure, REML = TRUE); emmeans' default df for a REML fit
# (Kenward-Roger).  Recorded: every column of as.data.frame(summary(.)) and its messages.
suppressPackageStartupMessages({library(lme4); library(emmeans); library(pbkrtest); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_emmeans_covkeep.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))
source(file.path(here, "bundled.R"))
seizure <- load_bundled("seizure")
stopifnot(is.numeric(seizure$trt), is.numeric(seizure$x))
m <- lmer(y ~ trt * x + age + (1 | id), data = seizure, REML = TRUE)
calls <- list(
  trt = 'emmeans(m, "trt")',
  trt_by_x = 'emmeans(m, "trt", by = "x")',
  trt_pairs = 'pairs(emmeans(m, "trt"))',
  trt_prop = 'emmeans(m, "trt", weights = "proportional")',
  trt_at_x = 'emmeans(m, "trt", at = list(x = 0.3))')
rec <- lapply(names(calls), function(id) {
  s <- summary(eval(parse(text = calls[[id]])))
  d <- as.data.frame(s)
  cols <- lapply(d, function(x) if (is.factor(x) || is.character(x)) I(as.character(x)) else I(as.numeric(x)))
  print(s)
  list(id = id, call = calls[[id]], columns = I(names(d)), table = cols, mesg = I(as.character(attr(s, "mesg"))))
})
writeLines(toJSON(list(description = "emmeans cov.keep = '2' on the bundled seizure (see make_emmeans_covkeep.R)",
                       emmeans_version = as.character(packageVersion("emmeans")),
                       lme4_version = as.character(packageVersion("lme4")),
                       model = "lmer(y ~ trt * x + age + (1 | id), seizure, REML = TRUE)",
                       results = rec), digits = NA, auto_unbox = TRUE, pretty = TRUE), out)
