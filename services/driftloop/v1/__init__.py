"""Generated from protos/driftloop/v1 by tools/gen_protos.sh. Do not edit."""
