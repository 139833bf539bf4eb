# CDM (entropy-weighted DTW token alignment) with its published loss weights (PowerShell).
# Override with parameters or append flags:
#   .\scripts\train_cdm.ps1 -TrainData data\AllNLI.csv --epochs 1 --token_weights teacher
# The teacher runs on every batch (token states), so it must fit in memory beside the student.
param(
    [string]$TrainData = "data/train/distill_texts_clean.csv",
    [string]$Student = "bert-base-uncased",
    [string]$Teacher = "Qwen/Qwen3-Embedding-0.6B",
    [string]$SaveDir = "checkpoints/cdm"
)
$ErrorActionPreference = "Stop"
& (Join-Path $PSScriptRoot "train_method.ps1") -Method cdm -TrainData $TrainData -Student $Student `
    -Teacher $Teacher -SaveDir $SaveDir -Extra $args -Defaults @(
    "--batch_size", "32", "--epochs", "1", "--learning_rate", "2e-4", "--max_length", "128",
    "--temperature", "0.05", "--w_task", "0.9", "--w_kd", "0.1"
)
exit $LASTEXITCODE
