#!/usr/bin/env bash
# Deploys (or updates) the sshca stack of one environment with the AWS CLI and prints its
# outputs as KEY=VALUE lines.
# Usage: infra/deploy.sh ENVIRONMENT [CloudFormation parameter overrides, e.g. CodeS3Bucket=b CodeS3Key=k]
# Honours the usual AWS_* variables (AWS_ENDPOINT_URL for LocalStack); AWS_CLI overrides the `aws` to use.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 ENVIRONMENT [Key=Value ...]" >&2; exit 2; }
env_name=$1; shift
aws=${AWS_CLI:-aws}
stack=${SSHCA_STACK:-sshca-$env_name}
"$aws" cloudformation deploy --no-fail-on-empty-changeset \
  --template-file "$(dirname "$0")/template.yaml" --stack-name "$stack" \
  --capabilities CAPABILITY_IAM \
  --parameter-overrides "EnvironmentName=$env_name" "$@" >&2
"$aws" cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text | tr '\t' '='
