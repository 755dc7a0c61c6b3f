#!/usr/bin/env python3
"""Placeholder: replaced by the oracle fixture generator."""
import argparse, os
ap = argparse.ArgumentParser(); ap.add_argument("--out", required=True)
os.makedirs(ap.parse_args().out, exist_ok=True)
