"""Self-supervised pretraining on IMRNet's pretext tasks (PMSP, CTP) and fine-tuning from it."""
