# DSKD (dual-space KD through cross-model attention; the teacher runs online on every batch), PowerShell.
# Override with parameters or append flags:
#   .\scripts\train_dskd.ps1 -Student sentence-transformers/all-MiniLM-L6-v2 --student_num_layers 2 --epochs 1
param(
    [string]$TrainData = "data/train/distill_texts_clean.csv",
    [string]$Student = "bert-base-uncased",
    [string]$Teacher = "Qwen/Qwen3-Embedding-0.6B",
    [string]$SaveDir = "checkpoints/dskd"
)
$ErrorActionPreference = "Stop"
& (Join-Path $PSScriptRoot "train_method.ps1") -Method dskd -TrainData $TrainData -Student $Student `
    -Teacher $Teacher -SaveDir $SaveDir -Extra $args -Defaults @(
    "--batch_size", "32", "--epochs", "1", "--learning_rate", "2e-4", "--max_length", "128",
    "--student_pooling", "mean", "--kd_rate", "0.5", "--kd_temperature", "2.0", "--projector_lr", "1e-3"
)
exit $LASTEXITCODE
