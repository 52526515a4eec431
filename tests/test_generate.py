"""Generations stepped and sampled together write exactly what each writes alone."""

import torch

import scriptrnn
from scriptrnn.generate.generation import Generation, sample_together, step_together
from scriptrnn.generate.sampling import SamplingConfig


def _alone(model, prime, config):
    return model.generate(prime, config)[0][len(model.start(prime, config).prime_text):]


def test_batched_requests_write_what_each_writes_alone():
    model = scriptrnn.load()
    configs = [SamplingConfig(max_new_tokens=40, seed=1), SamplingConfig(max_new_tokens=40, seed=2),
               SamplingConfig(max_new_tokens=40, seed=3, top_k=5, temperature=0.5),
               SamplingConfig(max_new_tokens=40, temperature=0)]
    primes = ["HAMLET:", "", "ROMEO: O", "JULIET:"]
    generations = [Generation(model, p, c.validate()) for p, c in zip(primes, configs)]
    for g in generations:
        g.prefill()
    with torch.no_grad():
        while True:
            sample_together(generations)
            if all(g.done for g in generations):
                break
            step_together(model.model, generations)
    for g, prime, config in zip(generations, primes, configs):
        assert g.texts[0] == _alone(model, prime, config)
