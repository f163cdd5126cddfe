# Sourced by the GPU scripts, from the repository root: culturelab is not installed on a lent machine, so
# generation/ is mapped to culturelab.generation through a namespace folder put on PYTHONPATH.
ns=$(mktemp -d)
mkdir -p "$ns/culturelab"
ln -s "$PWD/generation" "$ns/culturelab/generation"
export PYTHONPATH="$ns${PYTHONPATH:+:$PYTHONPATH}"
