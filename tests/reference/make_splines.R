# Reference values for poly(), splines::bs() and splines::ns() in formulas (run once; the JSON is committed).
# Usage: Rscript tests/reference/make_splines.R tests/reference/splines.json
# Bases: each case is a call on `x`, evaluated on a training vector; `basis` is the training basis,
# `predict` the basis at new values (inside and outside the training range) through R's
# predict() methods, which is what model frames use for new data (makepredictcall).
suppressPackageStartupMessages({library(lme4); library(splines); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)

set.seed(20240607)
xsets <- list(
  days = as.numeric(sleepstudy$Days),                                 # sorted within subject, many ties
  unif = round(runif(41, -2, 5), 1),                                  # unsorted, with ties
  small = c(3, 1, 4, 1, 5, 9, 2, 6, 5, 3.5)
)
newx <- list(
  days = c(-3, -0.5, 0, 0.25, 4.5, 8.999, 9, 9.5, 15),
  unif = c(-4, -2.05, min(xsets$unif), 0.33, 2, max(xsets$unif), 5.2, 8),
  small = c(0, 1, 2.5, 7.75, 9, 12)
)

calls <- list(
  days = c("poly(x, 1)", "poly(x, 2)", "poly(x, 3)", "poly(x, degree = 4)", "poly(x, 2, raw = TRUE)",
           "poly(x, degree = 3, raw = TRUE)",
           "bs(x)", "bs(x, df = 4)", "bs(x, df = 6)", "bs(x, df = 5, degree = 2)", "bs(x, degree = 1, df = 4)",
           "bs(x, knots = c(2.5, 6))", "bs(x, df = 5, intercept = TRUE)", "bs(x, 5)",
           "bs(x, df = 4, Boundary.knots = c(-1, 11))", "bs(x, df = 4, Boundary.knots = c(1, 8))",
           "ns(x)", "ns(x, df = 1)", "ns(x, 3)", "ns(x, df = 3)", "ns(x, df = 5)", "ns(x, knots = c(2, 4.5, 7))",
           "ns(x, df = 4, intercept = TRUE)", "ns(x, df = 3, Boundary.knots = c(-2, 10))",
           "ns(x, df = 3, Boundary.knots = c(1, 8))"),
  unif = c("poly(x, 2)", "poly(x, 5)", "poly(x, 3, raw = TRUE)",
           "bs(x, df = 4)", "bs(x, df = 7)", "bs(x, df = 6, degree = 2)", "bs(x, knots = c(-1, 0.5, 3))",
           "bs(x, df = 3, intercept = TRUE)", "bs(x, df = 5, degree = 4)",
           "ns(x, df = 2)", "ns(x, df = 4)", "ns(x, df = 6)", "ns(x, knots = c(0, 2.2))",
           "ns(x, df = 3, intercept = TRUE)", "ns(x, df = 3, Boundary.knots = c(-3, 6))"),
  small = c("poly(x, 2)", "poly(x, 6)", "bs(x, df = 4)", "bs(x, df = 5, degree = 2)", "ns(x, df = 3)",
            "ns(x, df = 2, intercept = TRUE)")
)

cases <- list()
for (set in names(calls)) {
  for (cl in calls[[set]]) {
    x <- xsets[[set]]
    b <- suppressWarnings(eval(parse(text = cl), list(x = x)))
    p <- suppressWarnings(predict(b, newx[[set]]))
    at <- attributes(b)
    cases[[length(cases) + 1]] <- list(
      set = set, call = cl, colnames = colnames(b), basis = matrix(as.numeric(b), nrow = nrow(b)),
      predict = matrix(as.numeric(p), nrow = nrow(p)),
      knots = if (!is.null(at$knots)) unname(as.numeric(at$knots)) else NULL,
      boundary = if (!is.null(at$Boundary.knots)) as.numeric(at$Boundary.knots) else NULL,
      alpha = if (!is.null(at$coefs)) at$coefs$alpha else NULL,
      norm2 = if (!is.null(at$coefs)) at$coefs$norm2 else NULL)
  }
}

# model matrices with factors and interactions, on training and new data
n <- 60
d <- data.frame(x = round(runif(n, -2, 5), 1), z = rnorm(n), f = factor(sample(c("a", "b", "c"), n, TRUE)),
                g = factor(rep(sprintf("g%02d", 1:12), each = 5)))
d$y <- 1 + 0.5 * d$x - 0.2 * d$x^2 + as.numeric(d$f) * 0.3 * d$x + rnorm(12)[as.integer(d$g)] + rnorm(n, sd = 0.5)
nd <- data.frame(x = c(-3, 0, 2.25, 5, 6.5), z = c(-3, 0.1, 0.5, 1, 3.5), f = factor(c("a", "c", "b", "a", "c")),
                 g = c("g01", "g05", "g12", "new", "g03"))
mm_formulas <- c("~ poly(x, 2) * f", "~ f * bs(x, df = 4)", "~ ns(x, df = 3):z + poly(z, degree = 2, raw = TRUE)",
                 "~ 0 + f:poly(x, 2)", "~ poly(x, 2):ns(z, 2)", "~ poly(x, 2):f", "~ poly(x, 2) * f * z",
                 "~ bs(x, knots = c(0, 2.5), degree = 2) + ns(z, knots = c(-0.5, 0.5), Boundary.knots = c(-2, 2))")
mms <- lapply(mm_formulas, function(fo) {
  mf <- model.frame(as.formula(fo), d)
  tt <- terms(mf)
  X <- model.matrix(tt, mf)
  Xn <- suppressWarnings(model.matrix(tt, model.frame(tt, nd, xlev = .getXlevels(tt, mf))))
  list(formula = fo, colnames = colnames(X), X = unname(X), X_new = unname(Xn))
})

fitinfo <- function(id, fit, newdata) {
  list(id = id, formula = deparse(formula(fit), width.cutoff = 500L), REML = isREML(fit),
       objective = if (isREML(fit)) REMLcrit(fit) else deviance(fit),
       fixef = unname(fixef(fit)), fixef_names = names(fixef(fit)), sigma = sigma(fit),
       theta = unname(getME(fit, "theta")), groups = names(getME(fit, "cnms")),
       cnames = unname(lapply(getME(fit, "cnms"), function(v) I(unname(v)))),
       fitted = unname(fitted(fit)), newdata = newdata,
       predict_newdata = unname(suppressWarnings(predict(fit, newdata = newdata, allow.new.levels = TRUE))),
       predict_marginal = unname(suppressWarnings(predict(fit, newdata = newdata, re.form = NA))))
}
snew <- data.frame(Days = c(-2, 0, 2.5, 9, 11, 14), Subject = c("308", "309", "999", "372", "337", "999"))
fits <- list(
  fitinfo("sleep_poly", lmer(Reaction ~ poly(Days, 2) + (1 | Subject), sleepstudy), snew),
  fitinfo("sleep_ns", lmer(Reaction ~ ns(Days, 3) + (Days | Subject), sleepstudy), snew),
  fitinfo("sleep_bs", lmer(Reaction ~ bs(Days, df = 5, degree = 2) + (1 | Subject), sleepstudy), snew),
  fitinfo("sleep_poly_random", lmer(Reaction ~ poly(Days, 2) + (poly(Days, 2) | Subject), sleepstudy), snew),
  fitinfo("sim_poly_factor", lmer(y ~ poly(x, 2) * f + (1 | g), d), nd),
  fitinfo("sim_ns_factor", lmer(y ~ ns(x, df = 3) * f + (1 | g), d), nd),
  fitinfo("sleep_ns_random", lmer(Reaction ~ ns(Days, df = 2) + (ns(Days, df = 2) | Subject), sleepstudy), snew),
  fitinfo("sleep_bs_random", lmer(Reaction ~ Days + (1 | Subject) + (0 + bs(Days, df = 3) | Subject), sleepstudy), snew)
)
# missing responses: the model frame evaluates poly()/ns() on every row before na.omit drops the
# incomplete ones, so the coefficients and knots come from all 180 values of Days
na_rows <- which(sleepstudy$Days >= 8 & as.integer(sleepstudy$Subject) <= 10)
sleep_na <- sleepstudy; sleep_na$Reaction[na_rows] <- NA
na_fits <- list(
  fitinfo("sleep_na_poly", lmer(Reaction ~ poly(Days, 2) + (1 | Subject), sleep_na), snew),
  fitinfo("sleep_na_ns", lmer(Reaction ~ ns(Days, df = 4) + (1 | Subject), sleep_na), snew)
)

# lmerTest's type III F tests (Satterthwaite): a basis is one term with one column per function
anovas <- lapply(list(list(id = "sleep_poly", fit = fits[[1]]), list(id = "sim_poly_factor", fit = fits[[5]])),
  function(a) {
    m <- lmerTest::lmer(as.formula(a$fit$formula), if (startsWith(a$id, "sleep")) sleepstudy else d)
    tab <- anova(m, type = 3, ddf = "Satterthwaite")
    list(id = a$id, terms = rownames(tab), F = tab[["F value"]], NumDF = tab[["NumDF"]], DenDF = tab[["DenDF"]])
  })

out <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")), x = xsets, newx = newx,
            cases = cases, data = d, newdata = nd, model_matrices = mms, fits = fits,
            na_rows = na_rows, na_fits = na_fits, anovas = anovas)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", dataframe = "columns", matrix = "rowmajor"), a[1])
