# TALAS with the seed's settings (PowerShell). Override with parameters or append flags:
#   .\scripts\train_talas.ps1 -TrainData data\AllNLI.csv --epochs 1
param(
    [string]$TrainData = "data/train/distill_texts_clean.csv",
    [string]$Student = "bert-base-uncased",
    [string]$Teacher = "Qwen/Qwen3-Embedding-0.6B",
    [string]$SaveDir = "checkpoints/talas"
)
$ErrorActionPreference = "Stop"
& (Join-Path $PSScriptRoot "train_method.ps1") -Method talas -TrainData $TrainData -Student $Student `
    -Teacher $Teacher -SaveDir $SaveDir -Extra $args -Defaults @(
    "--batch_size", "128", "--epochs", "5", "--learning_rate", "2e-5", "--max_length", "256",
    "--temperature", "0.05"
)
exit $LASTEXITCODE
