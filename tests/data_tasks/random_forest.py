import unittest

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder


def task_func(df, target, seed=42):
    """Encode categorical columns, fit a random forest; (accuracy, confusion matrix, importances)."""
    df = df.copy()
    for column in df.select_dtypes(include="object").columns:
        df[column] = LabelEncoder().fit_transform(df[column])
    X, y = df.drop(columns=[target]), df[target]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=seed)
    model = RandomForestClassifier(n_estimators=50, random_state=seed).fit(X_train, y_train)
    predicted = model.predict(X_test)
    importances = dict(zip(X.columns, model.feature_importances_.round(3)))
    return accuracy_score(y_test, predicted), confusion_matrix(y_test, predicted), importances


class TestCases(unittest.TestCase):
    def test_learnable(self):
        rows = [{"colour": c, "size": s, "noise": i % 7, "label": c == "red"}
                for i, (c, s) in enumerate([("red", 1), ("blue", 2), ("green", 3)] * 60)]
        accuracy, matrix, importances = task_func(pd.DataFrame(rows), "label")
        self.assertEqual(accuracy, 1.0)
        self.assertEqual(matrix.shape, (2, 2))
        self.assertLess(importances["noise"], 0.1)


if __name__ == "__main__":
    unittest.main()
