# Bundled datasets for the structured-covariance and residual-model references (mixedfx issue 10):
# three of nlme's datasets copied as plain data frames, and one simulated longitudinal dataset.
# Writes src/mixedfx/datasets/data/{orthodont,bodyweight,ovary,longsim}.csv.gz (comma CSV with a
# header, strings quoted, NA written as "NA", no row names) and prints the datasets.json entries.
# Usage (from the repository root): Rscript tests/reference/make_structured_data.R [OUTDIR]
#
# orthodont  = nlme::Orthodont  (distance, age, Subject, Sex); Subject is an ordered factor in nlme,
#              its levels() order (M16, M05, ..., F11) is kept in datasets.json.
# bodyweight = nlme::BodyWeight (weight, Time, Rat, Diet); Rat is ordered in nlme (levels "2","3",...).
# ovary      = nlme::Ovary      (Mare, Time, follicles); Time stays numeric; Mare is ordered in nlme.
# longsim    = simulated, seed 20240610 (RNGkind defaults of R >= 3.6: Mersenne-Twister, Inversion,
#              Rejection). 150 subjects id = 1..150; subjects 1..75 in group A, 76..150 in group B.
#              Each subject has n_i ~ Uniform{4,...,8} visits; t_1 = 0 and the gaps t_{j+1} - t_j are
#              Uniform(0.5, 2); t = round(cumsum, 2) (the rounded times are what the model uses).
#              x ~ N(0, 1) per visit (a covariate with NO effect on y: a null covariate).
#              y = 10 + 0.5 t + 1 [group B] + b0 + b1 t + e, where (b0, b1) ~ N(0, S) with
#              SD(b0) = 2, SD(b1) = 0.3, cor(b0, b1) = 0.3, and within a subject e is a zero-mean
#              Gaussian process with cor(e_j, e_k) = exp(-|t_j - t_k| / 1.5) (continuous-time AR(1),
#              phi per unit time = exp(-1/1.5) = 0.5134) and SD 1 in group A, 1.5 in group B.
#              y is rounded to 4 decimals.
suppressPackageStartupMessages(library(nlme))
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

write_gz(plain(Orthodont, c("distance", "age", "Subject", "Sex")), "orthodont")
write_gz(plain(BodyWeight, c("weight", "Time", "Rat", "Diet")), "bodyweight")
write_gz(plain(Ovary, c("Mare", "Time", "follicles")), "ovary")

# ---- longsim ----
set.seed(20240610)
nsub <- 150
S <- matrix(c(2^2, 0.3 * 2 * 0.3, 0.3 * 2 * 0.3, 0.3^2), 2)
rows <- vector("list", nsub)
for (i in seq_len(nsub)) {
  n <- sample(4:8, 1)
  t <- round(cumsum(c(0, runif(n - 1, 0.5, 2))), 2)
  grp <- if (i <= nsub / 2) "A" else "B"
  x <- rnorm(n)
  b <- drop(t(chol(S)) %*% rnorm(2))
  R <- exp(-abs(outer(t, t, "-")) / 1.5) * (if (grp == "B") 1.5^2 else 1)
  e <- drop(t(chol(R)) %*% rnorm(n))
  y <- 10 + 0.5 * t + (grp == "B") + b[1] + b[2] * t + e
  rows[[i]] <- data.frame(id = as.character(i), t = t, group = grp, x = round(x, 4), y = round(y, 4))
}
longsim <- do.call(rbind, rows)
write_gz(longsim, "longsim")

levs <- list(
  orthodont = list(Subject = levels(Orthodont$Subject), Sex = levels(Orthodont$Sex)),
  bodyweight = list(Rat = levels(BodyWeight$Rat), Diet = levels(BodyWeight$Diet)),
  ovary = list(Mare = levels(Ovary$Mare)),
  longsim = list(id = as.character(seq_len(nsub)), group = c("A", "B")))
cat(jsonlite::toJSON(levs, pretty = TRUE), "\n")
cat("longsim rows:", nrow(longsim), "\n")

# =====================================================================================================
# ---- Added for tests/reference/make_structured_rep.R: machines and repmeas --------------------------
# (Independent of everything above: its own seed, written after the files above, which it leaves as
# they were.) Writes src/mixedfx/datasets/data/{machines,repmeas}.csv.gz and prints their levels.
# machines = nlme::Machines (Worker, Machine, score): 6 workers x 3 machine brands x 3 replicates;
#            Worker is an ordered factor in nlme, its levels() order ("6", "2", "4", "1", "3", "5") is
#            kept in datasets.json.
# repmeas  = simulated, seed 20240612 (RNGkind defaults of R >= 3.6). 80 subjects id = 1..80;
#            subjects 1..40 in arm A, 41..80 in arm B. Every subject has the 5 visits
#            t = 0, 1, 2.5, 4, 7 (visit = factor of the visit index 1..5), each measured twice
#            (rows in id, visit, replicate order: 800 rows). Per subject the visit effects
#            b = (b_1, ..., b_5) ~ N(0, S) with S_jk = 2^2 exp(-0.3 |t_j - t_k|) (continuous-time AR(1)
#            over t, SD 2), drawn as t(chol(S)) %*% rnorm(5), then the 10 residuals rnorm(10) (SD 1)
#            in (visit, replicate) order; y = 5 + 0.4 t + 1 [arm B] + b_visit + e, rounded to 4 decimals.
write_gz(plain(Machines, c("Worker", "Machine", "score")), "machines")

set.seed(20240612)
rm_n <- 80; rm_t <- c(0, 1, 2.5, 4, 7); rm_nrep <- 2
rm_S <- 2^2 * exp(-0.3 * abs(outer(rm_t, rm_t, "-")))
rm_rows <- vector("list", rm_n)
for (i in seq_len(rm_n)) {
  arm <- if (i <= rm_n / 2) "A" else "B"
  b <- drop(t(chol(rm_S)) %*% rnorm(length(rm_t)))
  vis <- rep(seq_along(rm_t), each = rm_nrep)
  e <- rnorm(length(vis))
  y <- 5 + 0.4 * rm_t[vis] + (arm == "B") + b[vis] + e
  rm_rows[[i]] <- data.frame(id = as.character(i), arm = arm, visit = as.character(vis), t = rm_t[vis],
                             y = round(y, 4))
}
repmeas <- do.call(rbind, rm_rows)
write_gz(repmeas, "repmeas")
cat(jsonlite::toJSON(list(
  machines = list(Worker = levels(Machines$Worker), Machine = levels(Machines$Machine)),
  repmeas = list(id = as.character(seq_len(rm_n)), arm = c("A", "B"), visit = as.character(seq_along(rm_t)))),
  pretty = TRUE), "\n")
cat("repmeas rows:", nrow(repmeas), "\n")
