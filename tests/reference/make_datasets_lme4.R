# Fingerprints of lme4's own datasets, for the test that the package's bundled copies
# (src/mixedfx/datasets/data/*.csv.gz) hold the same values (tests/datasets/test_datasets.py).
# Per column of the bundled copy: factors give R's levels, the count per level and two order-sensitive
# sums of the level codes; numeric columns give the sum, sum of squares, an order-sensitive weighted
# sum, and the first and last values.
# Usage (from the repository root): Rscript tests/reference/make_datasets_lme4.R tests/reference/datasets_lme4.json
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_datasets_lme4.R OUT.json")
# bundled name = lme4 name and the columns the package ships (lme4's own derived columns left out)
BUNDLED <- list(
  cake = list("cake", c("replicate", "recipe", "temp", "angle")),
  cbpp = list("cbpp", c("herd", "incidence", "size", "period")),
  dyestuff = list("Dyestuff", c("Batch", "Yield")),
  dyestuff2 = list("Dyestuff2", c("Batch", "Yield")),
  grouseticks = list("grouseticks", c("INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION")),
  insteval = list("InstEval", c("s", "d", "studage", "lectage", "service", "dept", "y")),
  pastes = list("Pastes", c("strength", "batch", "cask")),
  penicillin = list("Penicillin", c("diameter", "plate", "sample")),
  sleepstudy = list("sleepstudy", c("Reaction", "Days", "Subject")),
  verbagg = list("VerbAgg", c("Anger", "Gender", "item", "resp", "id", "btype", "situ", "mode", "r2"))
)
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
source(file.path(dirname(normalizePath(script)), "fingerprint.R"))      # fingerprint()
res <- lapply(BUNDLED, function(b) {
  d <- get(b[[1]], envir = asNamespace("lme4"))
  list(lme4_name = b[[1]], nrow = nrow(d), columns = I(b[[2]]),
       fingerprint = lapply(setNames(b[[2]], b[[2]]), function(col) fingerprint(d[[col]])))
})
writeLines(toJSON(list(lme4_version = as.character(packageVersion("lme4")), R = R.version.string, datasets = res),
                  auto_unbox = TRUE, pretty = TRUE, digits = NA), out)
cat("wrote", out, "\n")
