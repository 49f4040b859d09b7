"""Byte-level BPE (GPT-2, RoBERTa) reproduced in-graph: ByteLevelBpeTokenizer and its tables."""
