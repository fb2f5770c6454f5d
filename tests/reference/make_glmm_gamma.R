# Reference for a small Gamma(log) GLMM where mixedfx's L-BFGS once stopped early (-2 log L 174.177 instead
# of 173.953, reported as converged): lme4 (tolPwrss = 1e-12) and glmmTMB fits, output committed as JSON.
# The 54 rows are embedded (generated once in Python: numpy default_rng(5), 10 groups of 6, group "3" dropped:
#   g = repeat(0:9, 6); x ~ N(0, 1); mu = exp(1 + 0.5 x + b_g), b_g ~ N(0, 0.4^2); y ~ Gamma(shape 4, mean mu)),
# printed with 17 significant digits, and written back to the JSON (as strings) so the tests need no random
# numbers.
# lme4's Gamma GLMM estimates the dispersion differently from the ML Laplace (lme4 issues #643, #936):
# compare its (theta, beta) through mixedfx's objective; glmmTMB optimizes the same likelihood as mixedfx.
# Usage: Rscript tests/reference/make_glmm_gamma.R tests/reference/glmm_gamma.json
suppressPackageStartupMessages({library(lme4); library(glmmTMB); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
d <- data.frame(
  y = c(2.1584219526234967, 1.9005276263846809, 4.766134670434789, 2.1329478351003233, 9.83286818967633,
  2.1177060435990893, 3.2712715733969837, 1.1117578633428957, 2.5164277672899265, 7.870488376524179,
  3.885542692638305, 1.4186876460708588, 0.3811305684907001, 3.598479433786298, 1.6803177079733569,
  0.5497700367447074, 2.0360789990753942, 1.1511158471877707, 4.407106099401178, 15.115515833205896,
  2.1451121899801935, 2.040738597567544, 2.5980923072351247, 2.9307433515856096, 1.591900323927437,
  3.277791992182436, 2.664535111091464, 2.4872293330460056, 1.786001649404922, 1.4542876246323966,
  2.12846126854308, 1.3721357173996285, 7.218218476413682, 0.8375270167656653, 4.906352283824673,
  3.0612803217522435, 1.8945281301010957, 2.4721880635494418, 1.1605552379221569, 2.8103651242316716,
  3.4406649942839795, 0.46778991362234146, 1.9083132159530332, 0.9912016566116275, 8.01892916366646,
  2.7354384001260845, 3.7281690526316478, 1.7212923161023552, 1.7695765582599285, 3.685256819402004,
  2.6219139038989425, 3.499363747013073, 5.298488039725211, 3.7821615225653447),
  x = c(-0.8019314252534474, -1.324358995628145, -0.24836162209524854, 0.4204452380655215, 1.1360465324896427,
  0.10970639932180819, -0.5526473205362324, -0.7847803553442784, 0.7487457707345911, 1.6347830429585775,
  0.27276877584472176, -1.2333286640307717, -0.9582652054360887, 1.6000190889991115, 0.2028824405086084,
  -1.7321348424395848, -0.08369619281702581, -1.1632259734447485, 0.40963782655711695, 0.8298553070613239,
  -1.643023371405677, -0.256730126365494, -0.9807473560440125, -0.17315522486203205, -1.2894187467538587,
  0.0206903940375912, -0.03788574104406823, -0.304337750958489, -1.0479265051202462, -0.3961903304730927,
  -1.091328901695709, -1.3552087462047395, 0.22478573245989314, -1.109349937891366, 1.1702961011782933,
  0.7165876558738361, -1.9978166924497212, 0.272128869412488, -1.1017166275810448, 0.033057220158269195,
  0.04363199256942161, -1.9884297882311208, -0.23342252376577002, -0.255790031399391, 0.9620005318430944,
  -1.1814468079562157, 0.7380418978456841, -1.0989727630364063, -0.33129089269991674, -0.8404731684222111,
  1.448731288921672, 0.5682130997882933, 2.4317325028452124, 0.6419163790823205),
  g = factor(c("0", "0", "0", "0", "0", "0", "1", "1", "1", "1", "1", "1", "2", "2", "2", "2", "2", "2", "4", "4", "4",
  "4", "4", "4", "5", "5", "5", "5", "5", "5", "6", "6", "6", "6", "6", "6", "7", "7", "7", "7", "7", "7", "8",
  "8", "8", "8", "8", "8", "9", "9", "9", "9", "9", "9")))
fit <- glmer(y ~ x + (1 | g), d, family = Gamma(link = "log"), control = glmerControl(tolPwrss = 1e-12))
tmb <- glmmTMB(y ~ x + (1 | g), d, family = Gamma(link = "log"))
res <- list(
  lme4 = list(version = as.character(packageVersion("lme4")), theta = unname(getME(fit, "theta")),
              fixef = as.list(fixef(fit)), minus2loglik = -2 * as.numeric(logLik(fit)), deviance = deviance(fit),
              sigma = sigma(fit)),
  glmmTMB = list(version = as.character(packageVersion("glmmTMB")), fixef = as.list(fixef(tmb)$cond),
                 se = as.list(sqrt(diag(vcov(tmb)$cond))), minus2loglik = -2 * as.numeric(logLik(tmb)),
                 sd_g = attr(VarCorr(tmb)$cond$g, "stddev")[[1]], sigma = sigma(tmb),
                 convergence = tmb$fit$convergence, max_abs_gradient = max(abs(tmb$sdr$gradient.fixed))),
  # the data as 17-digit strings (jsonlite prints at most 15 significant digits): they round-trip exactly
  data = list(y = sprintf("%.17g", d$y), x = sprintf("%.17g", d$x), g = as.character(d$g)))
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA), out)
cat("wrote", out, "\n")
