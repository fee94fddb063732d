"""Serving formats: the files vLLM, TGI, PEFT and llama.cpp load, built from ΔW factors.

Pure functions on tensors and files (the factorisation, PEFT adapters, GGUF copies, model
cards); `memstore.store.exports` feeds them from a repository."""
