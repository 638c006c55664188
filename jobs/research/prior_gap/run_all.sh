#!/bin/sh
# Runs the chains one after another (one process at a time).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cd "$(dirname "$0")"
/usr/bin/python3 gibbs.py 1e5 planted 200 1 > chain-1e5-planted.log 2>&1
/usr/bin/python3 gibbs.py 1e5 random 250 2 > chain-1e5-random.log 2>&1
/usr/bin/python3 gibbs.py 1e5 planted 60 3 fixz > chain-1e5-fixz.log 2>&1
/usr/bin/python3 gibbs.py 1e4 planted 200 4 > chain-1e4-planted.log 2>&1
/usr/bin/python3 gibbs.py 1e4 random 200 5 > chain-1e4-random.log 2>&1
/usr/bin/python3 gibbs.py 1e4 planted 60 6 fixz > chain-1e4-fixz.log 2>&1
