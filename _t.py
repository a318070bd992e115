import time, inrlab
for pre, lr, extra in (("pe", 5e-3, {}), ("relu", 1e-2, {}), ("mpe", 1e-2, {"model.encoding.finest_resolution": 64})):
    t=time.time()
    res = inrlab.fit("occ:sphere", pre, steps=60, progress=False, overrides={"signal.volume.size": 20, "signal.volume.mesh_size": 0,
         "model.width": 64, "model.depth": 2, "train.lr": lr, "train.batch_size": 2048, "train.eval_every": 20, **extra})
    print(pre, [(h["iou_train"]) for h in res.history], time.time()-t, flush=True)
