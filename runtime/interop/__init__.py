"""Tools that join the two frameworks: weight transfer, parity, export, evaluation, introspection.

Each imports a framework only inside the function that needs it, so a tool that can work with one framework
(evaluating or exporting a PyTorch run, say) runs where only that framework is installed.
"""
