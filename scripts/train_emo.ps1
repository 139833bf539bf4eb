# EMO (attention-relation CKA + optimal transport between token states; the teacher runs online on
# every batch with eager attention), PowerShell. Override with parameters or append flags:
#   .\scripts\train_emo.ps1 -Student sentence-transformers/all-MiniLM-L6-v2 --student_num_layers 2 --epochs 1
param(
    [string]$TrainData = "data/train/distill_texts_clean.csv",
    [string]$Student = "bert-base-uncased",
    [string]$Teacher = "Qwen/Qwen3-Embedding-0.6B",
    [string]$SaveDir = "checkpoints/emo"
)
$ErrorActionPreference = "Stop"
& (Join-Path $PSScriptRoot "train_method.ps1") -Method emo -TrainData $TrainData -Student $Student `
    -Teacher $Teacher -SaveDir $SaveDir -Extra $args -Defaults @(
    "--batch_size", "32", "--epochs", "1", "--learning_rate", "2e-4", "--max_length", "128",
    "--student_pooling", "mean", "--alpha", "0.5", "--w_ira", "0.1", "--w_ot", "1.0", "--ot_epsilon", "0.1",
    "--ot_max_iter", "100", "--projection_lr", "1e-3"
)
exit $LASTEXITCODE
