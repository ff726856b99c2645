import torch

from cl_lib import backbones, features, text


def test_upper_layers_on_cached_hidden_states_match_the_full_encoder():
    b = backbones.create("all-MiniLM-L6-v2")
    texts = ["how do i freeze my account", "what is the weather like", "play some jazz please", "hi"]
    full = features.encode_texts(b, texts)
    h, m = (hs := text.hidden_states(b, texts, layer=4)).states, hs.mask
    assert h.dtype == torch.float16 and h.shape[:2] == m.shape
    with torch.no_grad():
        z = text.UpperLayers(b, 4).eval()(h, m)
    assert torch.allclose(z, full, atol=1e-3)
    assert torch.allclose(full.norm(dim=1), torch.ones(4), atol=1e-5)
