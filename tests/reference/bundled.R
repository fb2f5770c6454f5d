# The bundled datasets as the reference scripts read them (sourced after fingerprint.R, with `here`
# the scripts' folder): the CSVs of src/mixedfx/datasets/data with the factor levels of
# datasets.json, so R and Python fit the same numbers; fp_data() records each data set's column
# fingerprints in the global `datasets` list that the scripts write to their JSON.
datadir <- file.path(here, "..", "..", "src", "mixedfx", "datasets", "data")
manifest <- jsonlite::fromJSON(file.path(datadir, "datasets.json"), simplifyVector = TRUE)
datasets <- list()

load_bundled <- function(name) {
  facs <- manifest[[name]]$factors
  cc <- setNames(rep("character", length(facs)), names(facs))
  d <- read.csv(gzfile(file.path(datadir, paste0(name, ".csv.gz"))), colClasses = cc, na.strings = "NA")
  for (col in names(facs)) d[[col]] <- factor(d[[col]], levels = facs[[col]])
  d
}

fp_data <- function(name, d) {
  datasets[[name]] <<- list(nrow = nrow(d), columns = I(names(d)), fingerprint = lapply(d, fingerprint))
  d
}
