"""scipy: minimise the Rosenbrock function and fit a curve to noisy data."""

import numpy as np
from scipy.optimize import curve_fit, minimize, rosen, rosen_der

found = minimize(rosen, x0=[1.3, 0.7, 0.8, 1.9, 1.2], jac=rosen_der, method="BFGS")
print("rosen", np.round(found.x, 4).tolist(), found.success)


def model(t, a, k, c):
    return a * np.exp(-k * t) + c


t = np.linspace(0, 4, 50)
rng = np.random.default_rng(1)
y = model(t, 2.5, 1.3, 0.5) + 0.02 * rng.standard_normal(t.size)
params, _ = curve_fit(model, t, y, p0=(1, 1, 0))
print("fit", np.round(params, 2).tolist())
