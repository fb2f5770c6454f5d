"""The R side of the timing benchmarks: one script template for lmer and glmer."""
from __future__ import annotations

_TEMPLATE = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
spec <- jsonlite::fromJSON(args[1], simplifyVector = FALSE)
out <- list()
for (m in spec$models) {
  d <- read.csv(m$csv, stringsAsFactors = FALSE)
  for (col in names(m$factors)) d[[col]] <- factor(as.character(d[[col]]), levels = unlist(m$factors[[col]]))
  f <- as.formula(m$formula)
  __SETUP__
  fit <- __FIT__          # warm-up
  times <- numeric(0)
  for (i in seq_len(m$reps)) {
    t0 <- proc.time()[["elapsed"]]
    fit <- __FIT__
    times <- c(times, proc.time()[["elapsed"]] - t0)
  }
  out[[m$id]] <- list(median = median(times), min = min(times), max = max(times), reps = m$reps, __EXTRA__)
}
writeLines(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA), args[2])
"""


def timing_script(fit: str, extra: str, setup: str = "") -> str:
    """R script timing ``fit`` (an R call using ``f``, ``d`` and the spec entry ``m``) ``m$reps`` times;
    ``extra`` adds fields to each model's result list (R code such as ``m2ll = ...``)."""
    return (_TEMPLATE.replace("__FIT__", fit).replace("__EXTRA__", extra).replace("__SETUP__", setup))
