# CDM (entropy-weighted DTW token alignment) with its published loss weights (PowerShell).
# Override with parameters or append flags:
#   .\scripts\train_cdm.ps1 -TrainData data\AllNLI.csv --epochs 1 --token_weights teacher
# The teacher runs on every batch (token states), so it must fit in memory beside the student.
param(
    [string]$TrainData = "",
    [string]$Student = "",
    [string]$Teacher = "",
    [string]$SaveDir = ""
)
$ErrorActionPreference = "Stop"
& (Join-Path $PSScriptRoot "train_method.ps1") -Method cdm -TrainData $TrainData -Student $Student `
    -Teacher $Teacher -SaveDir $SaveDir -Extra $args
exit $LASTEXITCODE
