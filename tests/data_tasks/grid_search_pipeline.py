import unittest

from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import classification_report, confusion_matrix
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def task_func(X, y, random_state=0):
    """Grid-search a scaled logistic regression (all cores); test accuracy and CV of a GBM."""
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=random_state, stratify=y)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    grid = GridSearchCV(pipe, {"clf__C": [0.01, 0.1, 1, 10]}, cv=3, n_jobs=-1, scoring="accuracy")
    grid.fit(X_train, y_train)
    pred = grid.predict(X_test)
    cv = cross_val_score(GradientBoostingClassifier(n_estimators=20, random_state=random_state), X, y, cv=3, n_jobs=-1)
    report = classification_report(y_test, pred, output_dict=True)
    return grid.best_params_, grid.score(X_test, y_test), confusion_matrix(y_test, pred), cv, report


class TestCases(unittest.TestCase):
    def test_search(self):
        X, y = make_classification(n_samples=300, n_features=8, n_informative=4, random_state=1)
        best, acc, cm, cv, report = task_func(X, y)
        self.assertIn(best["clf__C"], [0.01, 0.1, 1, 10])
        self.assertGreater(acc, 0.75)
        self.assertEqual(cm.shape, (2, 2))
        self.assertEqual(cm.sum(), 75)
        self.assertEqual(len(cv), 3)
        self.assertGreater(cv.mean(), 0.75)
        self.assertIn("macro avg", report)


if __name__ == "__main__":
    unittest.main()
