# Bundled datasets for the issue-11 references (zero-inflation, hurdles, dispersion models, beta,
# Student-t, Tweedie, NB1, ordinal mixed models): two of glmmTMB's datasets and one of ordinal's,
# copied as plain data frames, and two simulated datasets.
# Writes src/mixedfx/datasets/data/{salamanders,owls,wine,betasim,tweediesim}.csv.gz (comma CSV with
# a header, strings quoted, NA written as "NA", no row names) and prints the datasets.json factor levels.
# Usage (from the repository root): Rscript tests/reference/make_families_data.R [OUTDIR]
#
# salamanders = glmmTMB::Salamanders (glmmTMB 1.1.5): columns site, sample, mined, spp, count (the
#               covariates cover, DOP, Wtemp, DOY are dropped). site is an ordered factor in glmmTMB,
#               its levels() order (R-1, R-2, ...) is kept in datasets.json; mined has levels
#               ("yes", "no") and spp ("GP", "PR", "DM", ...) in R's order (not alphabetical).
# owls        = glmmTMB::Owls: columns Nest, FoodTreatment, SexParent, ArrivalTime, SiblingNegotiation,
#               BroodSize (NegPerChick = SiblingNegotiation / BroodSize and logBroodSize = log(BroodSize)
#               are dropped: derivable). The glmmTMB paper (Brooks et al. 2017, R Journal) renames
#               NCalls = SiblingNegotiation, FT = FoodTreatment and reorders Nest by NegPerChick; here
#               the package's own names and Nest level order are kept (the order does not change any fit).
# wine        = ordinal::wine (ordinal 2022.11.16): columns rating, temp, contact, bottle, judge (the
#               numeric bitterness score `response` is dropped). rating is an ordered factor with
#               levels "1" < "2" < "3" < "4" < "5" (datasets.json keeps that order).
# betasim     = simulated, seed 20240701 (RNGkind defaults of R >= 3.6: Mersenne-Twister, Inversion,
#               Rejection). 30 groups g = 1..30 with 20 rows each (600 rows, in group order).
#               b_g ~ N(0, 0.5^2) drawn first (30 values), then x ~ N(0, 1) (600 values, rounded to 4
#               decimals; the rounded x is what generates y), then
#               y ~ Beta(mu phi, (1 - mu) phi), mu = plogis(-0.5 + 0.8 x + b_g), phi = 15,
#               y rounded to 6 decimals and clamped to [1e-6, 1 - 1e-6].
# tweediesim  = simulated, seed 20240702 (same RNG kind). 30 groups g = 1..30, 20 rows each (600).
#               b_g ~ N(0, 0.4^2) (30 values), x ~ Uniform(-1, 1) (600 values, rounded to 4 decimals),
#               mu = exp(0.3 + 0.7 x + b_g), Tweedie with power p = 1.6 and dispersion phi = 1.2
#               (Var y = phi mu^p), drawn as a compound Poisson-gamma: N ~ Poisson(lambda) with
#               lambda = mu^(2-p) / (phi (2-p)), then y = sum of N Gamma(shape = (2-p)/(p-1),
#               scale = phi (p-1) mu^(p-1)) values (y = 0 when N = 0), row by row (rpois then, if
#               N > 0, rgamma(N, ...)); y rounded to 4 decimals (exact zeros stay 0).
suppressPackageStartupMessages({library(glmmTMB); library(ordinal)})
args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else "src/mixedfx/datasets/data"

plain <- function(d, cols) {
  d <- as.data.frame(d)
  out <- data.frame(row.names = seq_len(nrow(d)))
  for (col in cols) {
    x <- d[[col]]
    out[[col]] <- if (is.factor(x)) as.character(x) else as.numeric(x)
  }
  out
}
write_gz <- function(d, name) {
  con <- gzfile(file.path(outdir, paste0(name, ".csv.gz")), "w")
  write.csv(d, con, row.names = FALSE, na = "NA")
  close(con)
}

data(Salamanders, package = "glmmTMB"); data(Owls, package = "glmmTMB"); data(wine, package = "ordinal")
write_gz(plain(Salamanders, c("site", "sample", "mined", "spp", "count")), "salamanders")
write_gz(plain(Owls, c("Nest", "FoodTreatment", "SexParent", "ArrivalTime", "SiblingNegotiation", "BroodSize")), "owls")
write_gz(plain(wine, c("rating", "temp", "contact", "bottle", "judge")), "wine")

# ---- betasim ----
set.seed(20240701)
ng <- 30; nper <- 20
g <- rep(seq_len(ng), each = nper)
b <- rnorm(ng, 0, 0.5)
x <- round(rnorm(ng * nper), 4)
mu <- plogis(-0.5 + 0.8 * x + b[g]); phi <- 15
y <- rbeta(ng * nper, mu * phi, (1 - mu) * phi)
y <- pmin(pmax(round(y, 6), 1e-6), 1 - 1e-6)
betasim <- data.frame(g = as.character(g), x = x, y = y)
write_gz(betasim, "betasim")

# ---- tweediesim ----
set.seed(20240702)
b <- rnorm(ng, 0, 0.4)
x <- round(runif(ng * nper, -1, 1), 4)
mu <- exp(0.3 + 0.7 * x + b[g]); p <- 1.6; phi <- 1.2
lambda <- mu^(2 - p) / (phi * (2 - p)); shape <- (2 - p) / (p - 1); scale <- phi * (p - 1) * mu^(p - 1)
y <- numeric(ng * nper)
for (i in seq_along(y)) {
  n <- rpois(1, lambda[i])
  if (n > 0) y[i] <- sum(rgamma(n, shape = shape, scale = scale[i]))
}
tweediesim <- data.frame(g = as.character(g), x = x, y = round(y, 4))
write_gz(tweediesim, "tweediesim")

cat(jsonlite::toJSON(list(
  salamanders = list(site = levels(Salamanders$site), mined = levels(Salamanders$mined), spp = levels(Salamanders$spp)),
  owls = list(Nest = levels(Owls$Nest), FoodTreatment = levels(Owls$FoodTreatment), SexParent = levels(Owls$SexParent)),
  wine = list(rating = levels(wine$rating), temp = levels(wine$temp), contact = levels(wine$contact),
              bottle = levels(wine$bottle), judge = levels(wine$judge)),
  betasim = list(g = as.character(seq_len(ng))), tweediesim = list(g = as.character(seq_len(ng)))),
  pretty = TRUE), "\n")
cat("betasim: range y", range(betasim$y), " tweediesim: zeros", mean(tweediesim$y == 0), "mean", mean(tweediesim$y), "\n")
