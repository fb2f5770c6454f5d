# Bundled datasets for the GEE references (mixedfx issue 12): geepack's example data copied as plain
# data frames. Writes src/mixedfx/datasets/data/{ohio,dietox,respiratory,seizure}.csv.gz (comma CSV
# with a header, strings quoted, NA written as "NA", no row names) and prints the factor levels for
# datasets.json. Usage (from the repository root): Rscript tests/reference/make_gee_data.R [OUTDIR]
#
# ohio        = geepack::ohio (resp, id, age, smoke) as is: 537 children x 4 ages, id 0..536 (numeric).
# dietox      = geepack::dietox (Pig, Evit, Cu, Litter, Start, Weight, Feed, Time) as is; Pig, Evit,
#               Cu, Litter are factors (R's level order kept in datasets.json); Feed has NAs.
#               Numbers are written with 15 significant digits (write.csv), and make_geepack.R fits
#               the bundled copy, so R and Python use the same values.
# respiratory = geepack::respiratory (center, id, treat, sex, age, baseline, visit, outcome) plus
#               subject = 100 * center + id. In geepack's data `id` is numbered 1..56 WITHIN each
#               center (ids 1..55 occur in both centers), so `id` alone does not identify a patient;
#               `subject` does (111 patients x 4 visits). geepack defines clusters by runs of equal
#               consecutive id values, so its own examples with id = id happen to give the same
#               clusters (make_geepack.R checks that), but a grouping-by-value implementation must
#               use subject. treat (A, P) and sex (F, M) are factors; center stays numeric.
# seizure     = geepack::seizure (59 patients, wide: y1..y4, trt, base, age) reshaped to long as in
#               geepack's ?seizure example (Diggle, Liang and Zeger 1994, pp. 166-168):
#               reshape(seizure, varying = list(c("base", "y1", "y2", "y3", "y4")), v.names = "y",
#                       times = 0:4, direction = "long"), ordered by (id, time);
#               time = 0 is the 8-week baseline period (y = base), times 1..4 the 2-week periods;
#               t = 8 if time == 0 else 2 (weeks of observation, enters as offset(log(t)));
#               x = 0 if time == 0 else 1 (post-randomisation indicator). id = 1..59 = row of the wide
#               data. Columns: id, time, y, trt, age, t, x (295 rows); all numeric.
suppressPackageStartupMessages(library(geepack))
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

data(ohio, dietox, respiratory, seizure, package = "geepack")
write_gz(plain(ohio, c("resp", "id", "age", "smoke")), "ohio")
write_gz(plain(dietox, c("Pig", "Evit", "Cu", "Litter", "Start", "Weight", "Feed", "Time")), "dietox")
resp <- respiratory
resp$subject <- 100 * resp$center + resp$id
stopifnot(all(tapply(resp$visit, resp$subject, function(v) identical(as.integer(v), 1:4))))
write_gz(plain(resp, c("center", "id", "subject", "treat", "sex", "age", "baseline", "visit",
                       "outcome")), "respiratory")
seiz.l <- reshape(seizure, varying = list(c("base", "y1", "y2", "y3", "y4")), v.names = "y",
                  times = 0:4, direction = "long")
seiz.l <- seiz.l[order(seiz.l$id, seiz.l$time), ]
seiz.l$t <- ifelse(seiz.l$time == 0, 8, 2)
seiz.l$x <- ifelse(seiz.l$time == 0, 0, 1)
write_gz(plain(seiz.l, c("id", "time", "y", "trt", "age", "t", "x")), "seizure")

levs <- list(
  ohio = setNames(list(), character(0)),
  dietox = list(Pig = levels(dietox$Pig), Evit = levels(dietox$Evit), Cu = levels(dietox$Cu),
                Litter = levels(dietox$Litter)),
  respiratory = list(treat = levels(respiratory$treat), sex = levels(respiratory$sex)),
  seizure = setNames(list(), character(0)))
cat(jsonlite::toJSON(levs, pretty = TRUE), "\n")
cat("rows: ohio", nrow(ohio), "dietox", nrow(dietox), "respiratory", nrow(resp), "seizure",
    nrow(seiz.l), "\n")
