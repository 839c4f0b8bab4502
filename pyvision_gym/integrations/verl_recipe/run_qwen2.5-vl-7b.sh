#!/usr/bin/env bash
# PyVision-RL on verl 0.9: GRPO for a Qwen2.5-VL-7B (SFT) checkpoint with the paper's
# hyperparameters, the PyVision agent loop and verl's group filter. One node, 8 GPUs of 80 GB.
# Read README.md next to this file first (what maps onto verl and what does not).
#
#   MODEL=/path/to/PyVision-Image-7B-SFT bash run_qwen2.5-vl-7b.sh [more hydra overrides]
#   MODEL=... AGENT=pyvision_video_agent bash run_qwen2.5-vl-7b.sh   # PyVision-Video
#
# Environment: MODEL (a local model folder, required), AGENT (pyvision_agent), DATA (task rows,
# written on first use), PYTHON (the verl venv's python), NGPUS (8), NNODES (1),
# EXPERIMENT (the run's name). Extra arguments are hydra overrides appended last.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=${MODEL:?set MODEL to a local Qwen2.5-VL-7B checkpoint folder}
AGENT=${AGENT:-pyvision_agent}
DATA=${DATA:-$HOME/data/pyvision-verl/$AGENT}
PYTHON=${PYTHON:-python3}
NGPUS=${NGPUS:-8}
NNODES=${NNODES:-1}
EXPERIMENT=${EXPERIMENT:-qwen2.5-vl-7b-$AGENT}

# Task rows: train-split seeds 0..8191, val-split seeds 0..95 (the same tasks at every validation).
if [ ! -f "$DATA/train.parquet" ]; then
  "$PYTHON" -m pyvision_gym.integrations.verl_data "$DATA" --train 8192 --val 96 --agent-name "$AGENT"
fi

"$PYTHON" -m verl.trainer.main_ppo \
  data.train_files="$DATA/train.parquet" \
  data.val_files="$DATA/val.parquet" \
  data.train_batch_size=64 \
  data.gen_batch_size=32 \
  data.max_prompt_length=32000 \
  data.max_response_length=20480 \
  data.filter_overlong_prompts=false \
  data.return_raw_chat=true \
  data.seed=1 \
  algorithm.adv_estimator=grpo \
  algorithm.norm_adv_by_std_in_grpo=false \
  algorithm.use_kl_in_reward=false \
  algorithm.filter_groups.enable=true \
  algorithm.filter_groups.metric=reward \
  algorithm.filter_groups.max_inflight_gen_batches=1 \
  actor_rollout_ref.model.path="$MODEL" \
  actor_rollout_ref.model.use_remove_padding=true \
  actor_rollout_ref.model.enable_gradient_checkpointing=true \
  actor_rollout_ref.actor.optim.lr=1e-6 \
  actor_rollout_ref.actor.optim.lr_scheduler_type=constant \
  actor_rollout_ref.actor.optim.lr_warmup_steps_ratio=0.0 \
  actor_rollout_ref.actor.optim.weight_decay=0.01 \
  actor_rollout_ref.actor.optim.clip_grad=1.0 \
  actor_rollout_ref.actor.ppo_mini_batch_size=16 \
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \
  actor_rollout_ref.actor.ppo_epochs=1 \
  actor_rollout_ref.actor.clip_ratio_low=0.2 \
  actor_rollout_ref.actor.clip_ratio_high=0.2 \
  actor_rollout_ref.actor.clip_ratio_c=3.0 \
  actor_rollout_ref.actor.loss_agg_mode=token-mean \
  actor_rollout_ref.actor.use_kl_loss=false \
  actor_rollout_ref.actor.kl_loss_coef=0.0 \
  actor_rollout_ref.actor.entropy_coeff=0 \
  actor_rollout_ref.actor.freeze_vision_tower=true \
  actor_rollout_ref.actor.fsdp_config.param_offload=true \
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=true \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.mode=async \
  actor_rollout_ref.rollout.n=8 \
  actor_rollout_ref.rollout.temperature=1.0 \
  actor_rollout_ref.rollout.top_p=1.0 \
  actor_rollout_ref.rollout.top_k=-1 \
  actor_rollout_ref.rollout.val_kwargs.temperature=0 \
  actor_rollout_ref.rollout.val_kwargs.n=1 \
  actor_rollout_ref.rollout.val_kwargs.do_sample=false \
  actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
  actor_rollout_ref.rollout.gpu_memory_utilization=0.7 \
  actor_rollout_ref.rollout.max_model_len=52480 \
  actor_rollout_ref.rollout.max_num_batched_tokens=32768 \
  +actor_rollout_ref.rollout.limit_images=33 \
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8 \
  actor_rollout_ref.rollout.calculate_log_probs=true \
  actor_rollout_ref.rollout.agent.num_workers=8 \
  actor_rollout_ref.rollout.agent.agent_loop_config_path="$HERE/agent_loop.yaml" \
  actor_rollout_ref.rollout.agent.default_agent_loop="$AGENT" \
  trainer.n_gpus_per_node="$NGPUS" \
  trainer.nnodes="$NNODES" \
  trainer.total_epochs=5 \
  trainer.save_freq=10 \
  trainer.test_freq=20 \
  trainer.val_before_train=false \
  trainer.logger='[console,tensorboard]' \
  trainer.project_name=pyvision-gym \
  trainer.experiment_name="$EXPERIMENT" \
  "$@"
