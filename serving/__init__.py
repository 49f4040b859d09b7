"""How a model is SERVED: config, model manager, batching, TF worker, gRPC and REST fronts."""
