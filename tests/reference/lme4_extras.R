# lme4 references for what tests/reference/lme4_reference.R does not cover:
# a logistic GLMM (glmer, Laplace) and the conditional variances of the BLUPs
# (ranef(condVar = TRUE)). Used by tests/test_reference_lme4_extras.py.
#
# Usage (from the repository root):
#   Rscript tests/reference/lme4_extras.R [OUTDIR]
# Writes, with 17 significant digits:
#   lme4_glmm.csv     glmer(d ~ x + (1 | g), binomial) on lme4_glmm_data.csv:
#                     fixed effects, SEs (lme4's default: finite-difference Hessian;
#                     and conditional on theta, from RX), theta, log-likelihood
#   lme4_condvar.csv  sleepstudy lmer(Reaction ~ Days + (Days | Subject)): each
#                     subject's BLUPs and their conditional variances (tight bobyqa)
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
here <- dirname(normalizePath(sub("--file=", "", grep("--file=", commandArgs(), value = TRUE))))
outdir <- if (length(args)) args[1] else here
fmt <- function(x) sprintf("%.17g", x)
versions <- sprintf("R %s; lme4 %s", paste(R.version$major, R.version$minor, sep = "."),
                    as.character(packageVersion("lme4")))

data <- read.csv(file.path(here, "lme4_glmm_data.csv"))
# PIRLS to 1e-12: at the default tolPwrss = 1e-7 the estimates stop ~3e-4 short of the optimum.
tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                      optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e6))
fit <- glmer(d ~ x + (1 | g), data = data, family = binomial, nAGQ = 1, control = tight)
beta <- fixef(fit)
rows <- data.frame(
  quantity = c(paste0("beta:", names(beta)), paste0("se:", names(beta)),
               paste0("se_rx:", names(beta)), "theta", "loglik"),
  value = fmt(c(beta, sqrt(diag(as.matrix(vcov(fit)))),
                # the SEs conditional on theta (from RX), as mixedlm computes them
                sqrt(diag(as.matrix(suppressWarnings(vcov(fit, use.hessian = FALSE))))),
                getME(fit, "theta"), as.numeric(logLik(fit)))),
  versions = versions
)
write.csv(rows, file.path(outdir, "lme4_glmm.csv"), row.names = FALSE, quote = TRUE)

lmtight <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e6))
sleep <- lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, control = lmtight)
re <- ranef(sleep, condVar = TRUE)$Subject
post <- attr(re, "postVar")
out <- data.frame(
  subject = rownames(re),
  blup_intercept = fmt(re[, 1]), blup_days = fmt(re[, 2]),
  condvar_intercept = fmt(post[1, 1, ]), condvar_days = fmt(post[2, 2, ]),
  versions = versions
)
write.csv(out, file.path(outdir, "lme4_condvar.csv"), row.names = FALSE, quote = TRUE)
