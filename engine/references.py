"""The bibliography: every paper a method's docs page cites, by key (`MethodDoc.paper` names a key here).

Why a module of plain data: the methods pages (docs/methods/) and their BibTeX file
(docs/methods/references.bib) are generated from it by scripts/generate_docs.py, and a
method registered in code names its paper by key, so the citation cannot drift from the
page. No torch, no imports beyond the standard library: the registries import it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One paper. `venue` is the conference or journal as the field cites it (arXiv for preprints); `kind` is
    BibTeX's entry type."""

    title: str
    authors: tuple[str, ...]
    venue: str
    year: int
    url: str
    kind: str = "inproceedings"

    def cite(self) -> str:
        """One line for a docs page: authors (the first "et al." beyond three), "title", venue year."""
        names = self.authors
        if len(names) > 3:
            who = f"{names[0]} et al."
        elif len(names) > 1:
            who = ", ".join(names[:-1]) + f" and {names[-1]}"
        else:
            who = names[0]
        return f'{who}, "{self.title}", {self.venue} {self.year}'


REFERENCES: dict[str, Reference] = {
    # ------------------------------------------------------------------ scores
    "jiang2019": Reference(
        "Accelerating Deep Learning by Focusing on the Biggest Losers",
        ("Angela H. Jiang", "Daniel L.-K. Wong", "Giulio Zhou", "David G. Andersen", "Jeffrey Dean",
         "Gregory R. Ganger", "Gauri Joshi", "Michael Kaminsky", "Michael Kozuch", "Zachary C. Lipton",
         "Padmanabhan Pillai"),
        "arXiv:1910.00762", 2019, "https://arxiv.org/abs/1910.00762", "misc"),
    "paul2021": Reference(
        "Deep Learning on a Data Diet: Finding Important Examples Early in Training",
        ("Mansheej Paul", "Surya Ganguli", "Gintare Karolina Dziugaite"),
        "NeurIPS", 2021, "https://arxiv.org/abs/2107.07075"),
    "kirsch2023": Reference(
        "Does 'Deep Learning on a Data Diet' reproduce? Overall yes, but GraNd at Initialization does not",
        ("Andreas Kirsch",), "TMLR", 2023, "https://arxiv.org/abs/2303.14753", "article"),
    "toneva2019": Reference(
        "An Empirical Study of Example Forgetting during Deep Neural Network Learning",
        ("Mariya Toneva", "Alessandro Sordoni", "Remi Tachet des Combes", "Adam Trischler", "Yoshua Bengio",
         "Geoffrey J. Gordon"),
        "ICLR", 2019, "https://arxiv.org/abs/1812.05159"),
    "pleiss2020": Reference(
        "Identifying Mislabeled Data using the Area Under the Margin Ranking",
        ("Geoff Pleiss", "Tianyi Zhang", "Ethan R. Elenberg", "Kilian Q. Weinberger"),
        "NeurIPS", 2020, "https://arxiv.org/abs/2001.10528"),
    "zheng2023": Reference(
        "Coverage-centric Coreset Selection for High Pruning Rates",
        ("Haizhong Zheng", "Rui Liu", "Fan Lai", "Atul Prakash"),
        "ICLR", 2023, "https://arxiv.org/abs/2210.15809"),
    "zhang2024": Reference(
        "Spanning Training Progress: Temporal Dual-Depth Scoring (TDDS) for Enhanced Dataset Pruning",
        ("Xin Zhang", "Jiawei Du", "Yunsong Li", "Weiying Xie", "Joey Tianyi Zhou"),
        "CVPR", 2024, "https://arxiv.org/abs/2311.13613"),
    "he2024": Reference(
        "Large-scale Dataset Pruning with Dynamic Uncertainty",
        ("Muyang He", "Shuo Yang", "Tiejun Huang", "Bo Zhao"),
        "CVPR Workshops", 2024, "https://arxiv.org/abs/2306.05175"),
    "coleman2020": Reference(
        "Selection via Proxy: Efficient Data Selection for Deep Learning",
        ("Cody Coleman", "Christopher Yeh", "Stephen Mussmann", "Baharan Mirzasoleiman", "Peter Bailis",
         "Percy Liang", "Jure Leskovec", "Matei Zaharia"),
        "ICLR", 2020, "https://arxiv.org/abs/1906.11829"),
    "xia2023": Reference(
        "Moderate Coreset: A Universal Method of Data Selection for Real-world Data-efficient Deep Learning",
        ("Xiaobo Xia", "Jiale Liu", "Jun Yu", "Xu Shen", "Bo Han", "Tongliang Liu"),
        "ICLR", 2023, "https://openreview.net/forum?id=7D5EECbOaf9"),
    "sorscher2022": Reference(
        "Beyond neural scaling laws: beating power law scaling via data pruning",
        ("Ben Sorscher", "Robert Geirhos", "Shashank Shekhar", "Surya Ganguli", "Ari S. Morcos"),
        "NeurIPS", 2022, "https://arxiv.org/abs/2206.14486"),
    "margatina2021": Reference(
        "Active Learning by Acquiring Contrastive Examples",
        ("Katerina Margatina", "Giorgos Vernikos", "Loïc Barrault", "Nikolaos Aletras"),
        "EMNLP", 2021, "https://arxiv.org/abs/2109.03764"),
    "pruthi2020": Reference(
        "Estimating Training Data Influence by Tracing Gradient Descent",
        ("Garima Pruthi", "Frederick Liu", "Satyen Kale", "Mukund Sundararajan"),
        "NeurIPS", 2020, "https://arxiv.org/abs/2002.08484"),
    "tan2023": Reference(
        "Data Pruning via Moving-one-Sample-out",
        ("Haoru Tan", "Sitong Wu", "Fei Du", "Yukang Chen", "Zhibin Wang", "Fan Wang", "Xiaojuan Qi"),
        "NeurIPS", 2023, "https://arxiv.org/abs/2310.14664"),
    # ------------------------------------------------------------------ strategies
    "guo2022": Reference(
        "DeepCore: A Comprehensive Library for Coreset Selection in Deep Learning",
        ("Chengcheng Guo", "Bo Zhao", "Yanbing Bai"),
        "DEXA", 2022, "https://arxiv.org/abs/2204.08499"),
    "sener2018": Reference(
        "Active Learning for Convolutional Neural Networks: A Core-Set Approach",
        ("Ozan Sener", "Silvio Savarese"), "ICLR", 2018, "https://arxiv.org/abs/1708.00489"),
    "ash2020": Reference(
        "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds",
        ("Jordan T. Ash", "Chicheng Zhang", "Akshay Krishnamurthy", "John Langford", "Alekh Agarwal"),
        "ICLR", 2020, "https://arxiv.org/abs/1906.03671"),
    "welling2009": Reference(
        "Herding Dynamical Weights to Learn", ("Max Welling",), "ICML", 2009,
        "https://doi.org/10.1145/1553374.1553517"),
    "kaushal2022": Reference(
        "Submodlib: A Submodular Optimization Library",
        ("Vishal Kaushal", "Ganesh Ramakrishnan", "Rishabh Iyer"),
        "arXiv:2202.10680", 2022, "https://arxiv.org/abs/2202.10680", "misc"),
    "chen2018": Reference(
        "Fast Greedy MAP Inference for Determinantal Point Process to Improve Recommendation Diversity",
        ("Laming Chen", "Guoxin Zhang", "Hanning Zhou"), "NeurIPS", 2018, "https://arxiv.org/abs/1709.05135"),
    "mirzasoleiman2015": Reference(
        "Lazier Than Lazy Greedy",
        ("Baharan Mirzasoleiman", "Ashwinkumar Badanidiyuru", "Amin Karbasi", "Jan Vondrák", "Andreas Krause"),
        "AAAI", 2015, "https://arxiv.org/abs/1409.7938"),
    "mirzasoleiman2020": Reference(
        "Coresets for Data-efficient Training of Machine Learning Models",
        ("Baharan Mirzasoleiman", "Jeff Bilmes", "Jure Leskovec"), "ICML", 2020,
        "https://arxiv.org/abs/1906.01827"),
    "killamsetty2021gradmatch": Reference(
        "GRAD-MATCH: Gradient Matching based Data Subset Selection for Efficient Deep Model Training",
        ("Krishnateja Killamsetty", "Durga Sivasubramanian", "Ganesh Ramakrishnan", "Abir De", "Rishabh Iyer"),
        "ICML", 2021, "https://arxiv.org/abs/2103.00123"),
    "killamsetty2021glister": Reference(
        "GLISTER: Generalization based Data Subset Selection for Efficient and Robust Learning",
        ("Krishnateja Killamsetty", "Durga Sivasubramanian", "Ganesh Ramakrishnan", "Rishabh Iyer"),
        "AAAI", 2021, "https://arxiv.org/abs/2012.10630"),
    "agarwal2020": Reference(
        "Contextual Diversity for Active Learning",
        ("Sharat Agarwal", "Himanshu Arora", "Saket Anand", "Chetan Arora"), "ECCV", 2020,
        "https://arxiv.org/abs/2008.05723"),
    "maharana2024": Reference(
        "D2 Pruning: Message Passing for Balancing Diversity and Difficulty in Data Pruning",
        ("Adyasha Maharana", "Prateek Yadav", "Mohit Bansal"), "ICLR", 2024, "https://arxiv.org/abs/2310.07931"),
    "abbas2023": Reference(
        "SemDeDup: Data-efficient learning at web-scale through semantic deduplication",
        ("Amro Abbas", "Kushal Tirumala", "Dániel Simig", "Surya Ganguli", "Ari S. Morcos"),
        "arXiv:2303.09540", 2023, "https://arxiv.org/abs/2303.09540", "misc"),
    # ------------------------------------------------------------------ dynamic selection
    "qin2024": Reference(
        "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data Pruning",
        ("Ziheng Qin", "Kai Wang", "Zangwei Zheng", "Jianyang Gu", "Xiangyu Peng", "Zhaopan Xu", "Daquan Zhou",
         "Lei Shang", "Baigui Sun", "Xuansong Xie", "Yang You"),
        "ICLR", 2024, "https://arxiv.org/abs/2303.04947"),
    # ------------------------------------------------------------------ statistics
    "demsar2006": Reference(
        "Statistical Comparisons of Classifiers over Multiple Data Sets", ("Janez Demšar",),
        "JMLR", 2006, "https://jmlr.org/papers/v7/demsar06a.html", "article"),
}


def check_reference(key: str) -> Reference:
    """The reference `key`, or KeyError naming the known keys (a MethodDoc's `paper` must be one)."""
    if key not in REFERENCES:
        raise KeyError(f"no reference {key!r} in engine/references.py; known: {', '.join(sorted(REFERENCES))}")
    return REFERENCES[key]
