"""Topic 4: visual similarity search over all 70k Fashion-MNIST images, precision@10 by representation and backend.

  ycng run topic4/visual_search [--workdir DIR]
  ycng run topic4/visual_search --config.siamese_experiment="" --config.representations="('efficientnet','pixels')"

Streams every image through the frozen ImageNet EfficientNet-Lite0 (64x64 RGB) into a resumable
chunk store (kill it and run again: it continues), indexes the pooled 1280-d features with
ycng_jax.search.Index and reports same-class precision@10 for 2000 seeded test queries against
all 70k images (the query itself excluded): backbone features vs raw pixels vs the embeddings of
the topic-5 triplet Siamese tower (trained here on fashion_mnist; config.siamese_experiment=""
leaves it out), and exact vs approx vs faiss IVF / HNSW with queries/s.
Runner: ycng_jax.vision.similarity_experiment.
"""

from ycng_jax.vision.similarity_experiment import base_config


def get_config():
  config = base_config()
  config.image_size = 64
  config.num_queries = 2000
  config.k = 10
  return config
