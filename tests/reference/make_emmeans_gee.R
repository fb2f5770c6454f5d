# emmeans on geepack::geeglm fits (mixedfx: estimated marginal means of GEE fits).
# Usage (from the repository root):
#   OPENBLAS_NUM_THREADS=1 Rscript tests/reference/make_emmeans_gee.R tests/reference/emmeans_gee.json
# Data: the bundled copies src/mixedfx/datasets/data/{ohio,dietox,seizure}.csv.gz (factor levels from
# datasets.json), as make_geepack.R. Deterministic (no random numbers).
#
# Fits (control = geese.control(epsilon = 1e-12, maxit = 200), as make_geepack.R; rows already in
# cluster and time order, waves = NULL):
#   ohio_exch    geeglm(resp ~ age + smoke, family = binomial, id = id, corstr = "exchangeable")
#                (smoke is 0/1 numeric: emmeans keeps a two-valued covariate at both values,
#                cov.keep = "2"; age (-2..1, four values) is held at its mean unless at= is given)
#   dietox_ar1   geeglm(Weight ~ Time + Cu, family = gaussian, id = Pig, corstr = "ar1")   (Cu a factor)
#   dietox_exch_int geeglm(Weight ~ Time * Cu, family = gaussian, id = Pig, corstr = "exchangeable")
#   seizure_exch geeglm(y ~ x * trt + offset(log(t)), family = poisson, id = id, corstr = "exchangeable")
#   seizure_ar1  the same with corstr = "ar1"
# emmeans' geeglm method (emm_basis.geeglm) uses coef() and, by default, the robust covariance
# geese$vbeta ("Covariance estimate used: vbeta"; vcov.method = "vbeta.naiv" or "naive" the
# model-based one) and df = Inf (z tests, asymp.LCL/UCL), WRITTEN AS null in the JSON.
# seizure: x (0 baseline / 1 treatment period) and t (8 / 2 weeks) are confounded in the data, so
#   emmeans 1.8.4-1 detects a nesting "x %in% .offset.*t" and, with at = or offset =, then fails in
#   summary(); every seizure call uses nesting = NULL (x, t and the offset crossed in the grid).
#   emmeans adds a grid variable ".offset." (the offset's values, two here, kept as cov.keep = "2")
#   and names it in "Results are averaged over the levels of: ..."; mixedfx evaluates the offset
#   from the grid's t instead (same numbers: the mean of log(2) and log(8) either way).
#   offset = 0 (rates per week) corresponds to mixedfx's at = {"t": 1}.
# Recorded: every column of summary() (confint columns for emmeans, test columns for contrasts), its
# messages ("mesg"), the adjustment, and the fits' coefficients and robust/naive covariances.
suppressPackageStartupMessages({library(geepack); library(emmeans); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) stop("usage: Rscript tests/reference/make_emmeans_gee.R OUT.json")
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
here <- dirname(normalizePath(script))
source(file.path(here, "fingerprint.R"))      # fingerprint()
source(file.path(here, "bundled.R"))          # datadir, manifest, datasets, load_bundled(), fp_data()
datasets <- list()
ohio <- fp_data("ohio", load_bundled("ohio"))
dietox <- fp_data("dietox", load_bundled("dietox"))
seizure <- fp_data("seizure", load_bundled("seizure"))
stopifnot(is.factor(dietox$Cu), is.numeric(ohio$smoke))

tab <- function(s) {
  d <- as.data.frame(s)
  cols <- lapply(d, function(x) if (is.factor(x) || is.character(x)) I(as.character(x)) else I(as.numeric(x)))
  list(columns = I(names(d)), table = cols,
       mesg = I(as.character(attr(s, "mesg"))),
       adjust = if (!is.null(attr(s, "adjust"))) attr(s, "adjust") else NULL)
}
rec <- list()
add <- function(id, model, call) {
  notes <- character()
  s <- withCallingHandlers(eval(parse(text = call)), message = function(m) {
    notes <<- c(notes, sub("\n$", "", conditionMessage(m))); invokeRestart("muffleMessage")})
  rec[[id]] <<- c(list(id = id, model = model, call = call), tab(s), list(notes = I(notes)))
  cat(id, "\n"); print(s)
}

ctl <- geese.control(epsilon = 1e-12, maxit = 200)
models <- list(
  ohio_exch = 'geeglm(resp ~ age + smoke, family = binomial, data = ohio, id = id, corstr = "exchangeable", control = ctl)',
  dietox_ar1 = 'geeglm(Weight ~ Time + Cu, family = gaussian, data = dietox, id = Pig, corstr = "ar1", control = ctl)',
  dietox_exch_int = 'geeglm(Weight ~ Time * Cu, family = gaussian, data = dietox, id = Pig, corstr = "exchangeable", control = ctl)',
  seizure_exch = 'geeglm(y ~ x * trt + offset(log(t)), family = poisson, data = seizure, id = id, corstr = "exchangeable", control = ctl)',
  seizure_ar1 = 'geeglm(y ~ x * trt + offset(log(t)), family = poisson, data = seizure, id = id, corstr = "ar1", control = ctl)')
mat <- function(m) I(unname(lapply(seq_len(nrow(m)), function(i) as.numeric(m[i, ]))))
fitinfo <- list()
for (nm in names(models)) {
  m <- eval(parse(text = models[[nm]])); assign(nm, m)
  stopifnot(m$geese$error == 0)
  fitinfo[[nm]] <- list(call = sub("control = ctl", "control = geese.control(epsilon = 1e-12, maxit = 200)",
                                   models[[nm]], fixed = TRUE),
                        coef_names = I(names(coef(m))), coefficients = I(unname(coef(m))),
                        vcov_robust = mat(m$geese$vbeta), vcov_naive = mat(m$geese$vbeta.naiv),
                        alpha = I(unname(m$geese$alpha)), phi = m$geese$gamma[[1]])
}
ss <- function(x) sprintf("summary(%s)", x)
# ---- ohio: binomial, exchangeable
add("ohio_exch_smoke_response", "ohio_exch", ss('emmeans(ohio_exch, "smoke", type = "response")'))
add("ohio_exch_smoke_link", "ohio_exch", ss('emmeans(ohio_exch, "smoke")'))
add("ohio_exch_smoke_naive", "ohio_exch", ss('emmeans(ohio_exch, "smoke", vcov.method = "vbeta.naiv")'))
add("ohio_exch_smoke_pairs_response", "ohio_exch", ss('pairs(emmeans(ohio_exch, "smoke", type = "response"))'))
add("ohio_exch_smoke_pairs_link", "ohio_exch", ss('pairs(emmeans(ohio_exch, "smoke"))'))
add("ohio_exch_smoke_pairs_response_confint", "ohio_exch",
    'confint(pairs(emmeans(ohio_exch, "smoke", type = "response")))')
add("ohio_exch_smoke_by_age_response", "ohio_exch",
    ss('emmeans(ohio_exch, ~ smoke | age, at = list(age = c(-2, 1)), type = "response")'))
add("ohio_exch_age_pairs_response_holm", "ohio_exch",
    ss('pairs(emmeans(ohio_exch, "age", at = list(age = c(-2, -1, 0, 1)), type = "response"), adjust = "holm")'))
# ---- dietox: gaussian, ar1 and exchangeable with an interaction
add("dietox_ar1_Cu", "dietox_ar1", ss('emmeans(dietox_ar1, "Cu")'))
add("dietox_ar1_Cu_pairs", "dietox_ar1", ss('pairs(emmeans(dietox_ar1, "Cu"))'))
add("dietox_ar1_Cu_naive_pairs_holm", "dietox_ar1",
    ss('pairs(emmeans(dietox_ar1, "Cu", vcov.method = "naive"), adjust = "holm")'))
add("dietox_ar1_Cu_trt_vs_ctrl", "dietox_ar1", ss('contrast(emmeans(dietox_ar1, "Cu"), "trt.vs.ctrl")'))
add("dietox_ar1_Cu_at_time", "dietox_ar1", ss('emmeans(dietox_ar1, "Cu", at = list(Time = 12))'))
add("dietox_exch_int_Cu", "dietox_exch_int", ss('emmeans(dietox_exch_int, "Cu")'))
add("dietox_exch_int_Cu_by_time", "dietox_exch_int",
    ss('emmeans(dietox_exch_int, "Cu", by = "Time", at = list(Time = c(2, 7, 12)))'))
add("dietox_exch_int_Cu_by_time_pairs", "dietox_exch_int",
    ss('pairs(emmeans(dietox_exch_int, "Cu", by = "Time", at = list(Time = c(2, 7, 12))))'))
# ---- seizure: poisson with an offset (nesting = NULL, see above)
add("seizure_exch_trt_response", "seizure_exch",
    ss('emmeans(seizure_exch, "trt", nesting = NULL, type = "response")'))
add("seizure_exch_trt_by_x_response", "seizure_exch",
    ss('emmeans(seizure_exch, ~ trt | x, nesting = NULL, type = "response")'))
add("seizure_exch_trt_by_x_pairs_response", "seizure_exch",
    ss('pairs(emmeans(seizure_exch, ~ trt | x, nesting = NULL, type = "response"))'))
add("seizure_exch_trt_by_x_offset0_response", "seizure_exch",
    ss('emmeans(seizure_exch, ~ trt | x, offset = 0, nesting = NULL, type = "response")'))
add("seizure_ar1_x_trt_link", "seizure_ar1", ss('emmeans(seizure_ar1, c("x", "trt"), nesting = NULL)'))
add("seizure_ar1_x_trt_pairs_response", "seizure_ar1",
    ss('pairs(emmeans(seizure_ar1, c("x", "trt"), nesting = NULL, type = "response"), adjust = "bonferroni")'))

writeLines(toJSON(list(
  description = "emmeans summaries on geepack::geeglm fits (mixedfx GEE marginal means); see make_emmeans_gee.R",
  emmeans_version = as.character(packageVersion("emmeans")), geepack_version = as.character(packageVersion("geepack")),
  R = R.version.string, level = 0.95, datasets = datasets, models = fitinfo, results = unname(rec)),
  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), out)
cat("wrote", out, "with", length(rec), "results\n")
