# Column fingerprints for the reference scripts' data checks (sourced by make_datasets_lme4.R and
# make_kb07.R). Factors: R's levels, the count per level and two order-sensitive sums of the level
# codes. Numeric columns: the sum, the sum of squares, an order-sensitive weighted sum, with
# moments = TRUE also mean, sd, min and max, then the first and last values.
fingerprint <- function(x, moments = FALSE) {
  i <- seq_along(x)
  if (is.factor(x)) {
    k <- as.numeric(as.integer(x))
    return(list(type = "factor", levels = I(levels(x)), counts = I(as.vector(table(x))),
                code_sum = sum(k), code_weighted = sum(k * i)))
  }
  x <- as.numeric(x)
  out <- list(type = "numeric", sum = sum(x), sum_sq = sum(x^2), weighted = sum(x * i))
  if (moments) out <- c(out, list(mean = mean(x), sd = sd(x), min = min(x), max = max(x)))
  c(out, list(head = I(head(x, 5)), tail = I(tail(x, 5))))
}
