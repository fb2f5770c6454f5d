# Reference values for the R tests behind DHARMa's testUniformity (ks.test against punif) and
# testOutliers(type = "binomial") (binom.test), and p.adjust(method = "BH") (mixedfx issue 12,
# simulation-based residuals).  DHARMa itself is not packaged for Debian, so these cover the R
# functions DHARMa calls; the DHARMa-specific parts are checked against their definitions.
# Usage (from the repository root):
#   Rscript tests/reference/make_dharma_htest.R tests/reference/dharma_htest.json
# The residual vectors are stored with the results (inputs and outputs in one file).
suppressPackageStartupMessages(library(jsonlite))
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_dharma_htest.R OUT.json")

set.seed(20261130)
vectors <- list(
  small_uniform = runif(50),                       # n < 100, no ties: exact distribution
  large_uniform = runif(300),                      # n >= 100: asymptotic distribution
  large_skewed = rbeta(300, 1.3, 1),               # a departure from uniformity
  small_ties = c(rep(0, 3), runif(40), rep(1, 2))  # ties: asymptotic even though n < 100
)
ks <- list()
for (name in names(vectors)) {
  for (alt in c("two.sided", "less", "greater")) {
    t <- suppressWarnings(ks.test(vectors[[name]], "punif", alternative = alt))
    ks[[length(ks) + 1]] <- list(vector = name, alternative = alt, statistic = unname(t$statistic),
                                 pvalue = t$p.value, method = t$method)
  }
}
binom <- list()
cases <- list(c(7, 600, 2 / 251), c(16, 600, 2 / 251), c(0, 120, 2 / 101), c(3, 200, 1 / 251), c(12, 400, 2 / 251))
for (cs in cases) {
  for (alt in c("two.sided", "less", "greater")) {
    t <- binom.test(cs[1], cs[2], p = cs[3], alternative = alt)
    binom[[length(binom) + 1]] <- list(k = cs[1], n = cs[2], p = cs[3], alternative = alt, pvalue = t$p.value)
  }
}
p <- c(0.01, 0.04, 0.03, 0.2, 0.5, 0.012)
bh <- list(p = p, adjusted = p.adjust(p, method = "BH"))
writeLines(toJSON(list(r_version = R.version.string, vectors = vectors, ks = ks, binom = binom, bh = bh),
                  digits = NA, auto_unbox = TRUE, pretty = TRUE), out)
