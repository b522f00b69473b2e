"""A scikit-learn pipeline: scale, fit a logistic regression, cross-validate, report."""

from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

X, y = make_classification(n_samples=2_000, n_features=20, n_informative=8, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
model.fit(X_train, y_train)
scores = cross_val_score(model, X, y, cv=5)
print(f"test accuracy {model.score(X_test, y_test):.4f}")
print(f"cv mean {scores.mean():.4f}")
